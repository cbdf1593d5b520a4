"""Gate staff (real Redis and Postgres): a provider invites people for all or some of its events;
they scan only those; a device's `scan` token scans and does nothing else; a removed member is
refused at once; nobody scans another provider's event, and a refused scan changes nothing."""
# ruff: noqa: F811  (fixtures imported by name)

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import UTC, datetime, timedelta

from engine.checkin.access import GateAccess
from storefront.appkeys import ACCOUNTS, DB, KEYS, REDIS
from tests.factories import Actor
from tests.gate_helpers import client, sell_event  # noqa: F401
from tests.test_mail import inbox, mail_settings, renderer, until_delivered, worker  # noqa: F401

INVITES = "/api/provider/staff/invites"


async def invite(client, provider, email, event_ids=None) -> dict:
    body = {"email": email} if event_ids is None else {"email": email, "event_ids": event_ids}
    resp = await client.post(INVITES, json=body, headers=provider.h)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def join(client, made, name="Gate Person") -> Actor:
    """Accept `made` as a new account; the actor acts through a `write` token of theirs."""
    resp = await client.post("/api/staff/accept", json={
        "token": made["token"], "name": name, "password": "a long gate password"})
    assert resp.status == 200, await resp.text()
    user = await resp.json()
    assert user["role"] == "staff"
    token = await client.server.app[ACCOUNTS].create_token(user["user_id"], "phone")
    return Actor(user={"id": user["user_id"]}, token=token.token)


async def scan(client, actor, event_id, code):
    return await client.post("/api/scan", json={"event_id": event_id, "code": code,
                                                "gate": "Door"}, headers=actor.h)


async def test_staff_scan_only_the_events_they_were_invited_for(client, factory):
    one = await sell_event(client, factory, tickets=2)
    two = await sell_event(client, factory, tickets=1, provider=one.provider, order="ORD-2-GATE")
    stranger = await sell_event(client, factory, tickets=1, order="ORD-3-GATE")
    made = await invite(client, one.provider, "door@example.test", [one.event_id])
    assert made["link"].endswith(f"/staff/accept?token={made['token']}")
    staff = await join(client, made)
    events = await (await client.get("/api/gate/events", headers=staff.h)).json()
    assert [e["id"] for e in events] == [one.event_id]
    ok = await scan(client, staff, one.event_id, one.code(0))
    assert ok.status == 200 and (await ok.json())["result"] == "admitted"
    app = client.server.app
    for sold in (two, stranger):  # not invited for these: 404, and nothing changes
        key = app[KEYS].event(sold.event_id, "tickets")
        before = await app[REDIS].hgetall(key)
        refused = await scan(client, staff, sold.event_id, sold.code(0))
        assert refused.status == 404, await refused.text()
        assert await app[REDIS].hgetall(key) == before
        assert (await client.get(f"/api/events/{sold.event_id}/gate/list",
                                 headers=staff.h)).status == 404
        assert (await client.get(f"/api/events/{sold.event_id}/gate/search",
                                 params={"q": "guest"}, headers=staff.h)).status == 404
    # staff may not take a check-in back, nor reach the provider's routes
    undo = await client.post(f"/api/events/{one.event_id}/gate/undo",
                             json={"ticket_number": one.tickets[0]}, headers=staff.h)
    assert undo.status == 403
    assert (await client.get("/api/provider/events", headers=staff.h)).status == 403
    # a provider cannot scan another provider's event either
    assert (await scan(client, one.provider, stranger.event_id, stranger.code(0))).status == 404
    # invited for all events: both of this provider's, still not the stranger's
    every = await join(client, await invite(client, one.provider, "all@example.test"), "All Doors")
    events = await (await client.get("/api/gate/events", headers=every.h)).json()
    assert sorted(e["id"] for e in events) == sorted([one.event_id, two.event_id])
    assert (await scan(client, every, stranger.event_id, stranger.code(0))).status == 404


async def test_a_scan_token_scans_and_does_nothing_else(client, factory):
    sold = await sell_event(client, factory, tickets=1)
    staff = await join(client, await invite(client, sold.provider, "dev@example.test"))
    device = await client.server.app[ACCOUNTS].create_token(staff.user["id"], "gate 3",
                                                            scope="scan")
    h = {"Authorization": f"Bearer {device.token}"}
    resp = await client.post("/api/scan", json={"event_id": sold.event_id, "code": sold.code(),
                                                "gate": "Door"}, headers=h)
    assert resp.status == 200 and (await resp.json())["result"] == "admitted"
    assert (await client.get(f"/api/events/{sold.event_id}/gate/list", headers=h)).status == 200
    for refused in (client.get("/api/my/tickets", headers=h),
                    client.post(f"/api/events/{sold.event_id}/gate/undo",
                                json={"ticket_number": sold.tickets[0]}, headers=h),
                    client.post(INVITES, json={"email": "x@example.test"}, headers=h)):
        answer = await refused
        assert answer.status == 403 and (await answer.json())["error"] == "insufficient_scope"
    # the provider's own scan token works for its events
    own = await client.server.app[ACCOUNTS].create_token(sold.provider.user["id"], "laptop",
                                                         scope="scan")
    counts = await client.get(f"/api/events/{sold.event_id}/gate/counts",
                              headers={"Authorization": f"Bearer {own.token}"})
    assert counts.status == 200 and (await counts.json())["checked_in"] == 1


async def test_removing_a_member_ends_their_access_at_once(client, factory):
    sold = await sell_event(client, factory, tickets=2)
    staff = await join(client, await invite(client, sold.provider, "gone@example.test"))
    assert (await scan(client, staff, sold.event_id, sold.code(0))).status == 200
    listed = await (await client.get("/api/provider/staff", headers=sold.provider.h)).json()
    assert [m["email"] for m in listed["members"]] == ["gone@example.test"]
    assert listed["invites"][0]["accepted_at"] is not None
    resp = await client.delete(f"/api/provider/staff/{staff.user['id']}", headers=sold.provider.h)
    assert resp.status == 204
    assert (await scan(client, staff, sold.event_id, sold.code(1))).status == 404
    assert (await client.delete(f"/api/provider/staff/{staff.user['id']}",
                                headers=sold.provider.h)).status == 404


async def test_a_removal_during_another_process_lookup_leaves_no_stale_grant(client, factory):
    """Another process looked the member up in Postgres just before the removal, and writes its
    answer to the Redis cache just after it: that answer must not grant a minute more."""
    sold = await sell_event(client, factory, tickets=1)
    staff = await join(client, await invite(client, sold.provider, "race@example.test"))
    app = client.server.app
    user = await app[ACCOUNTS].cached_user(staff.user["id"])
    looked_up, go_on = asyncio.Event(), asyncio.Event()

    class LateAnswer(GateAccess):  # a real lookup whose answer arrives after the removal
        async def _lookup(self, user, event_id):
            role = await super()._lookup(user, event_id)
            looked_up.set()
            await go_on.wait()
            return role

    filling = asyncio.create_task(
        LateAnswer(app[DB], app[REDIS], app[KEYS]).role_at(user, sold.event_id))
    await looked_up.wait()
    resp = await client.delete(f"/api/provider/staff/{staff.user['id']}", headers=sold.provider.h)
    assert resp.status == 204
    go_on.set()
    assert await filling == "staff"  # asked before the removal: that one request may pass
    # a third process, with nothing of its own cached, must not be told "staff" from Redis
    assert await GateAccess(app[DB], app[REDIS], app[KEYS]).role_at(user, sold.event_id) is None
    assert (await scan(client, staff, sold.event_id, sold.code(0))).status == 404


async def test_a_removed_member_cannot_rejoin_through_an_invitation_still_open(client, factory):
    """The provider invited them twice (say, to change their events), they accepted one and were
    removed: the other link must not bring them back."""
    sold = await sell_event(client, factory, tickets=1)
    first = await invite(client, sold.provider, "Twice@example.test")
    second = await invite(client, sold.provider, "twice@example.test", [sold.event_id])
    staff = await join(client, first)
    resp = await client.delete(f"/api/provider/staff/{staff.user['id']}", headers=sold.provider.h)
    assert resp.status == 204
    back = await client.post("/api/staff/accept", json={"token": second["token"]},
                             headers=staff.h)
    assert back.status == 404, await back.text()
    assert (await scan(client, staff, sold.event_id, sold.code(0))).status == 404
    # a new invitation, made after the removal, works
    third = await invite(client, sold.provider, "twice@example.test")
    assert (await client.post("/api/staff/accept", json={"token": third["token"]},
                              headers=staff.h)).status == 200


async def test_invitations_are_checked(client, factory):
    sold = await sell_event(client, factory, tickets=1)
    other = await sell_event(client, factory, tickets=1, order="ORD-2-GATE")
    resp = await client.post(INVITES, json={"email": "x@example.test",
                                            "event_ids": [other.event_id]},
                             headers=sold.provider.h)
    assert resp.status == 404  # another provider's event, as a missing one
    for bad in ({"email": "not an email"}, {"email": "x@example.test", "event_ids": []},
                {"email": "x@example.test", "event_ids": [0]},
                {"email": "x@example.test", "event_ids": [2**63]},  # beyond bigint: not a 500
                {"email": "x@example.test", "event_ids": [2**64 + 5]}):
        assert (await client.post(INVITES, json=bad, headers=sold.provider.h)).status == 422
    buyer = await factory.user()
    assert (await client.post(INVITES, json={"email": "x@example.test"},
                              headers=buyer.h)).status == 403
    made = await invite(client, sold.provider, "once@example.test")
    await join(client, made)
    again = await client.post("/api/staff/accept", json={"token": made["token"], "name": "X",
                                                         "password": "a long gate password"})
    assert again.status == 404
    bogus = await client.post("/api/staff/accept", json={"token": "gi_" + "x" * 30, "name": "X",
                                                         "password": "a long gate password"})
    assert bogus.status == 404
    # someone with an account accepts while logged in as it; another account cannot
    mine = await invite(client, sold.provider, buyer.user["email"])
    wrong = await factory.user()
    refused = await client.post("/api/staff/accept", json={"token": mine["token"]},
                                headers=wrong.h)
    assert refused.status == 409
    ok = await client.post("/api/staff/accept", json={"token": mine["token"]}, headers=buyer.h)
    assert ok.status == 200 and (await ok.json())["role"] == "buyer"
    assert (await scan(client, buyer, sold.event_id, sold.code())).status == 200
    weak = await invite(client, sold.provider, "weak@example.test")
    short = await client.post("/api/staff/accept", json={"token": weak["token"], "name": "W",
                                                         "password": "short"})
    assert short.status == 422


async def test_staff_log_in_to_the_gate(client, factory):
    sold = await sell_event(client, factory, tickets=1)
    await join(client, await invite(client, sold.provider, "login@example.test"))
    page = await client.get("/login")
    token = (await page.text()).split('name="csrf_token" value="')[1].split('"')[0]
    resp = await client.post("/login", data={"email": "login@example.test", "csrf_token": token,
                                             "password": "a long gate password"},
                             allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, "/gate")
    gate = await (await client.get("/gate")).text()
    assert f'href="/gate/{sold.event_id}"' in gate and 'href="/gate">Gate</a>' in gate
    # the scanner without JavaScript: one code a form post
    scanner = await (await client.get(f"/gate/{sold.event_id}")).text()
    csrf = scanner.split('name="csrf_token" value="')[1].split('"')[0]
    answer = await client.post(f"/gate/{sold.event_id}", data={
        "csrf_token": csrf, "code": sold.code(), "gate": "Side"})
    assert answer.status == 200 and "Come in" in await answer.text()
    again = await (await client.post(f"/gate/{sold.event_id}", data={
        "csrf_token": csrf, "code": sold.code(), "gate": "Front"})).text()
    assert "Already used" in again and "at gate Side" in again
    assert (await client.post(f"/gate/{sold.event_id}", data={
        "code": sold.code(), "gate": "Front"})).status == 403  # no form token


async def test_the_invitation_is_emailed_once(client, factory, inbox, mail_settings, renderer):
    sold = await sell_event(client, factory, tickets=1)
    app = client.server.app
    await app[REDIS].delete(app[KEYS].deliveries())  # the sale's own emails: not ours
    made = await invite(client, sold.provider, "mailme@example.test", [sold.event_id])
    mail = worker(app, mail_settings, renderer)
    await until_delivered(mail, inbox, 1)
    (letter,) = inbox.to("mailme@example.test")
    assert letter.subject.endswith("invites you to scan tickets at the gate")
    assert f"/staff/accept?token={made['token']}" in letter.text()
    assert sold.event["title"] in letter.text() and sold.event["title"] in letter.html()
    entry = {"kind": "staff_invite", "invite": str(made["id"]), "token": made["token"]}
    await app[REDIS].xadd(app[KEYS].deliveries(), entry)  # queued again: not sent again
    await mail.deliveries.round()
    assert inbox.count() == 1


async def test_a_revoked_or_deactivated_scan_token_stops_at_once(client, factory):
    """Scan routes keep a token's grant in the process for a moment (no Redis round trip);
    revoking the token or deactivating its user through the accounts still ends it at once."""
    sold = await sell_event(client, factory, tickets=3)
    accounts = client.server.app[ACCOUNTS]
    for n, end in enumerate((
            lambda token, user_id: accounts.revoke_token(user_id, token.id),
            lambda token, user_id: accounts.set_active(user_id, False))):
        staff = await join(client, await invite(client, sold.provider, f"s{n}@example.test"))
        device = await accounts.create_token(staff.user["id"], "gate", scope="scan")
        h = {"Authorization": f"Bearer {device.token}"}
        body = {"event_id": sold.event_id, "code": sold.code(n), "gate": "Door"}
        assert (await client.post("/api/scan", json=body, headers=h)).status == 200
        await end(device, staff.user["id"])
        assert (await client.post("/api/scan", json=body, headers=h)).status == 401


async def test_a_scan_token_expiring_is_refused_from_the_process_cache_too(client, factory):
    sold = await sell_event(client, factory, tickets=2)
    accounts = client.server.app[ACCOUNTS]
    device = await accounts.create_token(sold.provider.user["id"], "gate", scope="scan",
                                         expires_at=datetime.now(UTC) + timedelta(hours=1))
    h = {"Authorization": f"Bearer {device.token}"}
    body = {"event_id": sold.event_id, "code": sold.code(0), "gate": "Door"}
    assert (await client.post("/api/scan", json=body, headers=h)).status == 200
    digest = hashlib.sha256(device.token.encode()).digest()
    fresh, user, scope, _ = accounts._local_tokens[digest]  # time passing: the expiry is behind
    accounts._local_tokens[digest] = (fresh, user, scope, time.time() - 1)
    refused = await client.post("/api/scan", json={**body, "code": sold.code(1)}, headers=h)
    assert refused.status == 401 and (await refused.json())["error"] == "token_expired"
