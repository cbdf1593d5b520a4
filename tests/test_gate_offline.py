"""Offline gates (real Redis and Postgres): the list a gate carries (keys and ticket states,
versioned), and check-ins made offline synced later: the first scan wins by the time it was
made, a retried sync changes nothing, conflicts and stale-list refusals are reported, and the
earliest check-in is what Postgres keeps."""
# ruff: noqa: F811  (fixtures imported by name)

from __future__ import annotations

import base64
import time

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from engine.tickets import Keyring
from fulfillment.checkins import CheckinWriter
from storefront.appkeys import DB, KEYS, REDIS
from tests.gate_helpers import KEYRING, client, payload, sell_event  # noqa: F401

IMPOSTOR = Keyring.generate(KEYRING.current_kid)  # the same key id, another key: forgeries


async def test_the_list_carries_keys_and_ticket_states_and_a_version(client, factory):
    sold = await sell_event(client, factory, tickets=3)
    url, h = f"/api/events/{sold.event_id}/gate/list", sold.provider.h
    resp = await client.get(url, headers=h)
    doc = await resp.json()
    assert doc["v"] == 1 and doc["event_id"] == sold.event_id
    (key,) = doc["keys"]
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(key["public_key"]))
    head, _, sig = sold.code(0).rpartition(".")
    public.verify(base64.b32decode(sig + "="), head.encode())  # the gate can verify offline
    serials = {t[0]: t for t in doc["tickets"]}
    assert set(serials) == {n.split("-")[2] for n in sold.tickets}
    first = serials[sold.tickets[0].split("-")[2]]
    assert first[1:6] == [1, "v", "Guest 0", sold.package["id"], 0]
    assert doc["packages"] == {str(sold.package["id"]): sold.package["name"]}
    unchanged = await client.get(url, headers={**h, "If-None-Match": resp.headers["ETag"]})
    assert unchanged.status == 304
    await client.post("/api/scan", json={"event_id": sold.event_id, "code": sold.code(0),
                                         "gate": "A"}, headers=h)
    changed = await client.get(url, headers={**h, "If-None-Match": resp.headers["ETag"]})
    assert changed.status == 200
    row = {t[0]: t for t in (await changed.json())["tickets"]}[sold.tickets[0].split("-")[2]]
    assert row[2] == "u" and row[6] > 0 and row[7] == "A"


async def test_offline_sync_first_scan_wins_and_conflicts_are_reported(client, factory, db):
    sold = await sell_event(client, factory, tickets=6)
    app, h = client.server.app, sold.provider.h
    url = f"/api/events/{sold.event_id}/gate/sync"
    now = int(time.time() * 1000)
    # online meanwhile: ticket 1 came in at gate B (now); ticket 2 will be checked in later
    await client.post("/api/scan", json={"event_id": sold.event_id, "code": sold.code(1),
                                         "gate": "B"}, headers=h)
    key = app[KEYS].event(sold.event_id, "tickets")
    entry = msgspec.json.decode(await app[REDIS].hget(key, sold.tickets[2]))
    entry.update(s="used", at=now - 60_000, gate="C", by="u:1")  # in at C a minute ago
    await app[REDIS].hset(key, sold.tickets[2], msgspec.json.encode(entry))
    await app[REDIS].hincrby(app[KEYS].event(sold.event_id, "checkin:counts"), "in", 1)
    await app[REDIS].hincrby(app[KEYS].event(sold.event_id, "checkin:counts"), "g:C", 1)
    refunded = msgspec.json.decode(await app[REDIS].hget(key, sold.tickets[3]))
    await app[REDIS].hset(key, sold.tickets[3], msgspec.json.encode({**refunded, "s": "refunded"}))
    items = [
        {"id": "s0", "code": sold.code(0), "at": now - 120_000},  # clean
        {"id": "s1", "code": sold.code(1), "at": now - 300_000},  # before B's online scan: first
        {"id": "s2", "code": sold.code(2), "at": now - 10_000},  # after C's: conflict
        {"id": "s3", "code": sold.code(3), "at": now - 5_000},  # refunded since the list
        {"id": "s4", "code": sold.tickets[4], "at": now + 10**9},  # typed; a clock ahead: now
        {"id": "s5", "code": payload(sold.tickets[5], keyring=IMPOSTOR), "at": now},
    ]
    resp = await client.post(url, json={"gate": "Offline 1", "items": items}, headers=h)
    assert resp.status == 200, await resp.text()
    out = await resp.json()
    results = {r["id"]: r for r in out["results"]}
    assert {k: r["result"] for k, r in results.items()} == {
        "s0": "admitted", "s1": "first", "s2": "conflict", "s3": "refunded", "s4": "admitted",
        "s5": "forged"}
    assert results["s1"]["was"]["gate"] == "B"
    assert (results["s2"]["ticket"]["gate"], results["s2"]["ticket"]["checked_in_at"]) == (
        "C", now - 60_000)
    assert out["conflicts"] == 4
    assert results["s4"]["ticket"]["checked_in_at"] <= int(time.time() * 1000) + 1000
    counts = await (await client.get(f"/api/events/{sold.event_id}/gate/counts",
                                     headers=h)).json()
    assert counts["checked_in"] == 4
    assert counts["gates"] == {"C": 1, "Offline 1": 3}  # B's check-in moved to the earlier scan
    # the same sync again (the answer was lost): duplicates, nothing counted twice
    again = await (await client.post(url, json={"gate": "Offline 1", "items": items[:2]},
                                     headers=h)).json()
    assert [r["result"] for r in again["results"]] == ["duplicate", "duplicate"]
    assert again["conflicts"] == 0
    # Postgres keeps the earliest check-in of ticket 1 and logs both
    await CheckinWriter(app[REDIS], app[KEYS], app[DB]).round()
    row = await db.fetchrow("SELECT status, checked_in_at, checked_in_by FROM tickets "
                            "WHERE ticket_number = $1", sold.tickets[1])
    assert row["status"] == "used"
    assert int(row["checked_in_at"].timestamp() * 1000) == now - 300_000
    assert row["checked_in_by"].endswith(" at Offline 1")
    assert [r["offline"] for r in await db.fetch(
        "SELECT offline FROM checkins WHERE ticket_number = $1 ORDER BY id", sold.tickets[1])] == [
        False, True]


async def test_a_sync_retried_after_an_undo_does_not_check_the_ticket_in_again(client, factory):
    """The sync's answer was lost; meanwhile the provider took the check-in back. The device
    sends the same batch again: a duplicate, and the undo stands."""
    sold = await sell_event(client, factory, tickets=1)
    app, h = client.server.app, sold.provider.h
    url = f"/api/events/{sold.event_id}/gate/sync"
    body = {"gate": "Offline 1", "items": [{"id": "k1", "code": sold.code(),
                                            "at": int(time.time() * 1000) - 60_000}]}
    first = await (await client.post(url, json=body, headers=h)).json()
    assert first["results"][0]["result"] == "admitted"
    undo = await client.post(f"/api/events/{sold.event_id}/gate/undo", headers=h,
                             json={"ticket_number": sold.tickets[0]})
    assert (await undo.json())["result"] == "undone"
    stream = app[KEYS].event(sold.event_id, "checkins")
    entries = await app[REDIS].xlen(stream)
    again = await (await client.post(url, json=body, headers=h)).json()
    assert again["results"][0]["result"] == "duplicate" and again["conflicts"] == 0
    key = app[KEYS].event(sold.event_id, "tickets")
    assert msgspec.json.decode(await app[REDIS].hget(key, sold.tickets[0]))["s"] == "valid"
    assert await app[REDIS].xlen(stream) == entries
    counts = await (await client.get(f"/api/events/{sold.event_id}/gate/counts",
                                     headers=h)).json()
    assert counts["checked_in"] == 0
    # the person at the door is scanned again: in
    scan = await client.post("/api/scan", json={"event_id": sold.event_id, "code": sold.code(),
                                                "gate": "Main"}, headers=h)
    assert (await scan.json())["result"] == "admitted"


async def test_a_bad_sync_is_a_4xx_and_changes_nothing(client, factory):
    sold = await sell_event(client, factory, tickets=1)
    app, h = client.server.app, sold.provider.h
    url = f"/api/events/{sold.event_id}/gate/sync"
    key = app[KEYS].event(sold.event_id, "tickets")
    before = await app[REDIS].hgetall(key)
    good = {"id": "a", "code": sold.code(), "at": 1}
    for body in ({"gate": "G", "items": []},
                 {"gate": "G", "items": [good, {**good, "code": "garbage"}]},
                 {"gate": "G", "items": [good, good]},
                 {"gate": "G", "items": [{**good, "id": "no spaces"}]},
                 {"gate": "G", "items": [{**good, "at": 0}]},
                 {"gate": "", "items": [good]},
                 {"gate": "G", "items": [good] * 201},
                 {"gate": "G", "items": [{**good, "extra": 1}]}):
        resp = await client.post(url, json=body, headers=h)
        assert resp.status == 422, (body, await resp.text())
    assert await app[REDIS].hgetall(key) == before
