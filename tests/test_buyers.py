"""Who a buyer is, and that one identity cannot hoard: purpose-bound signed values, guest
identities that cost something per address, one basket per buyer, a per-event cap, hold rate
limits answering 429 with Retry-After, idempotent retries, and the client address behind proxies."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from engine.audit import audit
from engine.inventory import HoldRefused
from engine.signing import sign
from storefront.app import create_app
from storefront.appkeys import DB, INVENTORY, SETTINGS
from storefront.buyer import GUEST_COOKIE
from storefront.client import client_ip
from tests.factories import Factory

EV = "/api/provider/events"


@contextlib.asynccontextmanager
async def app_client(settings, **overrides):
    """A storefront with some settings changed (rate limits, proxies)."""
    app = create_app(msgspec.structs.replace(settings, **overrides))
    async with TestClient(TestServer(app)) as client:
        yield client


async def _event(factory, **package):
    provider = await factory.user("provider")
    event = await factory.event(provider)
    pkg = await factory.package(provider, event["id"], **{"capacity": 100, **package})
    resp = await factory.client.post(f"{EV}/{event['id']}/publish", headers=provider.h)
    assert resp.status == 200
    return provider, event, pkg


def _ga(pkg, quantity=1):
    return {"items": [{"package_id": pkg["id"], "quantity": quantity}]}


async def _cookieless_hold(client, event, body) -> tuple[int, dict, str | None]:
    client.session.cookie_jar.clear()
    resp = await client.post(f"/api/events/{event['id']}/holds", json=body)
    guest = resp.cookies.get(GUEST_COOKIE)
    return resp.status, await resp.json(), guest.value if guest else None


async def test_a_value_signed_for_another_purpose_is_not_a_guest(client, factory, settings):
    """The review's case: a `kwika_csrf` value was accepted as `kwika_guest`."""
    _, event, pkg = await _event(factory)
    status, hold, guest = await _cookieless_hold(client, event, _ga(pkg))
    assert status == 201 and guest
    guest_id = guest.rpartition(".")[0]
    for purpose in ("csrf", "session"):
        forged = sign(settings.secret_key, purpose, guest_id)  # ours, but not a guest identity
        client.session.cookie_jar.clear()
        resp = await client.get(f"/api/holds/{hold['id']}", cookies={GUEST_COOKIE: forged})
        assert resp.status == 403, purpose
        mine = await client.get(f"/api/events/{event['id']}/holds/mine", cookies={GUEST_COOKIE: forged})
        assert await mine.json() == []
    client.session.cookie_jar.clear()
    resp = await client.get(f"/api/holds/{hold['id']}", cookies={GUEST_COOKIE: guest})
    assert resp.status == 200


async def test_guest_identities_are_rationed_per_address(factory, settings):
    async with app_client(settings, guests_per_ip_per_minute=3) as client:
        _, event, pkg = await _event(Factory(client))
        results = [await _cookieless_hold(client, event, _ga(pkg)) for _ in range(6)]
    assert [s for s, _, _ in results] == [201, 201, 201, 429, 429, 429]
    for status, body, cookie in results[3:]:
        assert body["error"] == "rate_limited" and cookie is None
    assert len({c for _, _, c in results[:3]}) == 3


async def test_rate_limited_holds_answer_429_with_retry_after(factory, settings):
    async with app_client(settings, holds_per_buyer_per_minute=3) as client:
        f = Factory(client)
        _, event, pkg = await _event(f)
        buyer = await f.user()
        statuses = []
        for _ in range(5):  # hold and give back, again and again
            resp = await client.post(f"/api/events/{event['id']}/holds", headers=buyer.h, json=_ga(pkg))
            statuses.append(resp.status)
            if resp.status == 201:
                await client.delete(f"/api/holds/{(await resp.json())['id']}", headers=buyer.h)
            else:
                assert 1 <= int(resp.headers["Retry-After"]) <= 60
        assert statuses == [201, 201, 201, 429, 429]
        other = await f.user()  # another buyer is not slowed by this one
        resp = await client.post(f"/api/events/{event['id']}/holds", headers=other.h, json=_ga(pkg))
        assert resp.status == 201


async def test_holds_from_one_address_are_limited_for_accounts_and_guests(factory, settings):
    async with app_client(settings, holds_per_ip_per_minute=4) as client:
        f = Factory(client)
        _, event, pkg = await _event(f)
        buyers = [await f.user() for _ in range(3)]
        statuses = [(await client.post(f"/api/events/{event['id']}/holds", headers=b.h,
                                       json=_ga(pkg))).status for b in buyers]
        statuses += [(await _cookieless_hold(client, event, _ga(pkg)))[0] for _ in range(2)]
        assert statuses == [201, 201, 201, 201, 429]


async def test_one_basket_per_buyer_and_holds_mine(client, factory):
    _, event, pkg = await _event(factory)
    buyer = await factory.user()
    url = f"/api/events/{event['id']}/holds"
    assert await (await client.get(url + "/mine", headers=buyer.h)).json() == []
    first = await (await client.post(url, headers=buyer.h, json=_ga(pkg, 2))).json()
    resp = await client.post(url, headers=buyer.h, json=_ga(pkg, 1))
    body = await resp.json()
    assert resp.status == 409 and body["error"] == "basket_exists"
    assert body["fields"]["hold_id"] == first["id"]
    mine = await (await client.get(url + "/mine", headers=buyer.h)).json()
    assert [h["id"] for h in mine] == [first["id"]] and mine[0]["items"][0]["quantity"] == 2
    assert abs(datetime.fromisoformat(mine[0]["server_time"]) - datetime.now(UTC)) < timedelta(minutes=1)
    assert (await client.delete(f"/api/holds/{first['id']}", headers=buyer.h)).status == 204
    assert (await client.post(url, headers=buyer.h, json=_ga(pkg, 1))).status == 201


async def test_the_event_caps_what_one_buyer_holds_and_buys(client, factory):
    provider = await factory.user("provider")
    event = await factory.event(provider, max_tickets_per_buyer=3)
    a = await factory.package(provider, event["id"])
    b = await factory.package(provider, event["id"])
    assert (await client.post(f"{EV}/{event['id']}/publish", headers=provider.h)).status == 200
    buyer = await factory.user()
    url = f"/api/events/{event['id']}/holds"
    body = {"items": [{"package_id": a["id"], "quantity": 2}, {"package_id": b["id"], "quantity": 2}]}
    resp = await client.post(url, headers=buyer.h, json=body)
    err = await resp.json()
    assert resp.status == 409 and err["error"] == "event_limit_exceeded" and err["fields"]["limit"] == "3"
    hold = await (await client.post(url, headers=buyer.h, json=_ga(a, 2))).json()
    inventory = client.server.app[INVENTORY]
    await inventory.confirm(event["id"], await inventory.get_hold(event["id"], hold["id"]), "ORD-cap-1")
    resp = await client.post(url, headers=buyer.h, json=_ga(b, 2))  # 2 bought + 2 > 3
    assert resp.status == 409 and (await resp.json())["error"] == "event_limit_exceeded"
    assert (await client.post(url, headers=buyer.h, json=_ga(b, 1))).status == 201
    resp = await client.patch(f"{EV}/{event['id']}", headers=provider.h, json={"max_tickets_per_buyer": 0})
    assert resp.status == 422


async def test_an_idempotency_key_makes_retries_one_hold(client, factory):
    _, event, pkg = await _event(factory)
    buyer = await factory.user()
    url = f"/api/events/{event['id']}/holds"
    headers = {**buyer.h, "Idempotency-Key": "checkout-click-1"}
    responses = await asyncio.gather(*[client.post(url, headers=headers, json=_ga(pkg, 2))
                                       for _ in range(20)])
    bodies = [await r.json() for r in responses]
    assert {r.status for r in responses} == {201} and len({b["id"] for b in bodies}) == 1
    inventory = client.server.app[INVENTORY]
    assert (await inventory.availability(event["id"])).packages[pkg["id"]].held == 2
    other_key = await client.post(url, headers={**buyer.h, "Idempotency-Key": "another"}, json=_ga(pkg))
    assert (await other_key.json())["error"] == "basket_exists"
    # someone else using the same key gets a hold of their own
    stranger = await factory.user()
    theirs = await client.post(url, headers={**stranger.h, "Idempotency-Key": "checkout-click-1"},
                               json=_ga(pkg))
    assert theirs.status == 201 and (await theirs.json())["id"] != bodies[0]["id"]
    # once sold, the retry says so instead of making a new hold that could never be paid for
    hold = await inventory.get_hold(event["id"], bodies[0]["id"])
    await inventory.confirm(event["id"], hold, "ORD-idem-1")
    retry = await client.post(url, headers=headers, json=_ga(pkg, 2))
    body = await retry.json()
    assert retry.status == 409 and body["error"] == "hold_already_sold"
    assert body["fields"]["order"] == "ORD-idem-1"
    assert (await inventory.availability(event["id"])).packages[pkg["id"]].held == 1
    bad = await client.post(url, headers={**buyer.h, "Idempotency-Key": "é" * 3}, json=_ga(pkg))
    assert bad.status in (400, 422)


async def test_a_hold_id_of_another_event_is_refused(client, factory):
    _, event_a, pkg_a = await _event(factory)
    _, event_b, _ = await _event(factory)
    inventory = client.server.app[INVENTORY]
    hold = await inventory.hold(event_a["id"], "u:1", {pkg_a["id"]: 1})
    for call in (inventory.confirm(event_b["id"], hold, "ORD-x"),
                 inventory.release(event_b["id"], hold.id, "u:1"),
                 inventory.hold(event_b["id"], "u:1", {pkg_a["id"]: 1}, hold_id=hold.id)):
        with pytest.raises(Exception) as refused:
            await call
        assert getattr(refused.value, "code", None) == "wrong_event"
    assert (await inventory.availability(event_a["id"])).packages[pkg_a["id"]].held == 1


async def test_no_guests_means_no_guests_whatever_the_cookie(client, factory):
    """A valid guest cookie from another event does not pass; switching guest checkout off
    takes effect at once, in every storefront process (the hold script checks it)."""
    provider = await factory.user("provider")
    open_event = await factory.event(provider)
    open_pkg = await factory.package(provider, open_event["id"])
    closed_event = await factory.event(provider, allow_guest_checkout=False)
    closed_pkg = await factory.package(provider, closed_event["id"])
    for e in (open_event, closed_event):
        assert (await client.post(f"{EV}/{e['id']}/publish", headers=provider.h)).status == 200
    status, _, guest = await _cookieless_hold(client, open_event, _ga(open_pkg))
    assert status == 201 and guest
    resp = await client.post(f"/api/events/{closed_event['id']}/holds", json=_ga(closed_pkg),
                             cookies={GUEST_COOKIE: guest})
    assert resp.status == 401 and (await resp.json())["error"] == "login_required"
    resp = await client.patch(f"{EV}/{open_event['id']}", headers=provider.h,
                              json={"allow_guest_checkout": False})
    assert resp.status == 200
    # another process, whose cache still says guests are welcome, is refused by the script
    with pytest.raises(HoldRefused) as refused:
        await client.server.app[INVENTORY].hold(open_event["id"], "g:someone", {open_pkg["id"]: 1})
    assert refused.value.reason == "login_required"
    client.session.cookie_jar.clear()
    resp = await client.post(f"/api/events/{open_event['id']}/holds", json=_ga(open_pkg))
    assert resp.status == 401


async def test_reading_a_hold_uses_the_servers_clock(client, factory, monkeypatch):
    """A storefront whose clock runs an hour ahead still finds a live hold: hold reads and
    releases are judged by Redis TIME, like the scripts that write holds."""
    _, event, pkg = await _event(factory)
    buyer = await factory.user()
    hold = await (await client.post(f"/api/events/{event['id']}/holds", headers=buyer.h,
                                    json=_ga(pkg))).json()

    class Skewed(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + timedelta(hours=1)

        @classmethod
        def fromtimestamp(cls, *args, **kwargs):
            return datetime.fromtimestamp(*args, **kwargs)

    monkeypatch.setattr("engine.inventory.datetime", Skewed)
    assert (await client.get(f"/api/holds/{hold['id']}", headers=buyer.h)).status == 200
    assert (await client.delete(f"/api/holds/{hold['id']}", headers=buyer.h)).status == 204


@pytest.mark.parametrize("trusted, peer, forwarded, expected", [
    ("", "127.0.0.1", "9.9.9.9", "127.0.0.1"),                      # no proxies: header ignored
    ("127.0.0.1", "127.0.0.1", "9.9.9.9", "9.9.9.9"),
    ("127.0.0.1, 10.0.0.0/8", "127.0.0.1", "1.2.3.4, 10.0.0.9", "1.2.3.4"),
    ("127.0.0.1", "127.0.0.1", "6.6.6.6, 1.2.3.4", "1.2.3.4"),       # spoofed left part ignored
    ("127.0.0.1", "127.0.0.1", "1.2.3.4, bogus", "127.0.0.1"),       # malformed: trust nothing
    ("10.0.0.1", "127.0.0.1", "9.9.9.9", "127.0.0.1"),               # peer is not a proxy
    ("127.0.0.1", "127.0.0.1", "2001:db8::1", "2001:db8::1"),
])
def test_client_address_behind_trusted_proxies(settings, trusted, peer, forwarded, expected):
    app = create_app(msgspec.structs.replace(settings, trusted_proxies=trusted))
    request = make_mocked_request("POST", "/", headers={"X-Forwarded-For": forwarded}, app=app)
    request._transport_peername = (peer, 1234)
    request._cache.pop("remote", None)
    assert app[SETTINGS].trusted_proxies == trusted
    assert client_ip(request) == expected


async def test_a_rush_of_cookieless_clients_cannot_hoard(client, factory, db):
    """The review's case: 2,000 fresh cookieless clients for a 200-ticket package with a per-buyer
    limit of 4, all from one address. With the default limits (60 new guests and 600 holds a
    minute per address) the stock ends spread over at least 50 identities, the rest refused."""
    _, event, pkg = await _event(factory, capacity=200, per_buyer_limit=4, max_per_order=4)
    url = f"/api/events/{event['id']}/holds"

    # a session that keeps no cookies: every request arrives as a fresh client
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as fresh:
        async def one() -> tuple[int, str | None, str | None]:
            async with fresh.post(client.make_url(url), json=_ga(pkg, 4)) as resp:
                body = await resp.json()
                return resp.status, body.get("error"), body.get("id")

        results = await asyncio.gather(*[one() for _ in range(2000)])
    held = [r for r in results if r[0] == 201]
    refused = {(s, e) for s, e, _ in results if s != 201}
    assert refused <= {(429, "rate_limited"), (409, "sold_out"), (409, "not_enough")}
    inventory = client.server.app[INVENTORY]
    stock = (await inventory.availability(event["id"])).packages[pkg["id"]]
    assert stock.held == 4 * len(held) <= 200
    assert len(held) >= 50
    assert await audit(inventory, event["id"], client.server.app[DB]) == []
