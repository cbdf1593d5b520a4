"""Holds over HTTP: hold, look, give back, check availability; owners only; live availability."""

from __future__ import annotations

import asyncio

import pytest

from storefront.appkeys import DB
from tests.factories import future


@pytest.fixture
async def on_sale(factory):
    provider = await factory.user("provider")
    event = await factory.event(provider)
    pkg = await factory.package(provider, event["id"], capacity=10, max_per_order=4, per_buyer_limit=6)
    resp = await factory.client.post(f"/api/provider/events/{event['id']}/publish", headers=provider.h)
    assert resp.status == 200
    return provider, event, pkg


async def test_hold_then_release_returns_stock(client, factory, on_sale):
    _, event, pkg = on_sale
    buyer = await factory.user()
    resp = await client.post(f"/api/events/{event['id']}/holds", headers=buyer.h,
                             json={"items": [{"package_id": pkg["id"], "quantity": 3}]})
    assert resp.status == 201, await resp.text()
    hold = await resp.json()
    assert hold["total"] == 3 * pkg["price"] and hold["currency"] == "MWK"
    detail = await (await client.get(f"/api/events/{event['slug']}")).json()
    assert detail["packages"][0]["available"] == 7
    got = await client.get(f"/api/holds/{hold['id']}", headers=buyer.h)
    assert got.status == 200 and (await got.json())["id"] == hold["id"]
    assert (await client.delete(f"/api/holds/{hold['id']}", headers=buyer.h)).status == 204
    assert (await client.get(f"/api/holds/{hold['id']}", headers=buyer.h)).status == 404
    detail = await (await client.get(f"/api/events/{event['slug']}")).json()
    assert detail["packages"][0]["available"] == 10


async def test_only_the_owner_sees_or_releases_a_hold(client, factory, on_sale):
    _, event, pkg = on_sale
    owner, other = await factory.user(), await factory.user()
    hold = await (await client.post(f"/api/events/{event['id']}/holds", headers=owner.h, json={
        "items": [{"package_id": pkg["id"], "quantity": 1}]})).json()
    for method in ("get", "delete"):
        resp = await getattr(client, method)(f"/api/holds/{hold['id']}", headers=other.h)
        assert resp.status == 403 and (await resp.json())["error"] == "not_owner"
    anonymous = await client.delete(f"/api/holds/{hold['id']}")
    assert anonymous.status == 403
    assert (await client.get(f"/api/holds/{hold['id']}", headers=owner.h)).status == 200


async def test_guest_hold_uses_a_signed_cookie(client, on_sale):
    _, event, pkg = on_sale
    resp = await client.post(f"/api/events/{event['id']}/holds",
                             json={"items": [{"package_id": pkg["id"], "quantity": 1}]})
    assert resp.status == 201
    assert "kwika_guest" in resp.cookies
    hold = await resp.json()
    assert (await client.get(f"/api/holds/{hold['id']}")).status == 200  # same cookie jar


async def test_guest_refused_when_event_needs_login(client, factory):
    provider = await factory.user("provider")
    event = await factory.event(provider, allow_guest_checkout=False)
    pkg = await factory.package(provider, event["id"])
    await client.post(f"/api/provider/events/{event['id']}/publish", headers=provider.h)
    resp = await client.post(f"/api/events/{event['id']}/holds",
                             json={"items": [{"package_id": pkg["id"], "quantity": 1}]})
    assert resp.status == 401


@pytest.mark.parametrize("body, status, error", [
    ({"items": []}, 422, "invalid"),
    ({"items": [{"package_id": 1, "quantity": 0}]}, 422, "invalid"),
    ({"items": [{"package_id": 1, "quantity": -2}]}, 422, "invalid"),
    ({"items": [{"package_id": "x", "quantity": 1}]}, 422, "invalid"),
    ({"items": [{"package_id": 1, "quantity": 1}], "extra": 1}, 422, "invalid"),
    ({"seat_ids": [5, 5]}, 422, "invalid"),
])
async def test_bad_hold_bodies_touch_nothing(client, factory, on_sale, body, status, error):
    _, event, pkg = on_sale
    for item in body.get("items", []):
        if item.get("package_id") == 1:
            item["package_id"] = pkg["id"]
    buyer = await factory.user()
    resp = await client.post(f"/api/events/{event['id']}/holds", headers=buyer.h, json=body)
    assert resp.status == status
    payload = await resp.json()
    assert payload["error"] == error and payload["message"]
    detail = await (await client.get(f"/api/events/{event['slug']}")).json()
    assert detail["packages"][0]["available"] == 10


async def test_duplicate_package_lines_refused(client, factory, on_sale):
    _, event, pkg = on_sale
    buyer = await factory.user()
    resp = await client.post(f"/api/events/{event['id']}/holds", headers=buyer.h, json={
        "items": [{"package_id": pkg["id"], "quantity": 1}, {"package_id": pkg["id"], "quantity": 1}]})
    assert resp.status == 422 and "twice" in (await resp.json())["message"]


@pytest.mark.parametrize("quantity, status, error", [(5, 422, "above_maximum"), (4, 201, None)])
async def test_order_maximum(client, factory, on_sale, quantity, status, error):
    _, event, pkg = on_sale
    buyer = await factory.user()
    resp = await client.post(f"/api/events/{event['id']}/holds", headers=buyer.h,
                             json={"items": [{"package_id": pkg["id"], "quantity": quantity}]})
    assert resp.status == status
    if error:
        assert (await resp.json())["error"] == error


async def test_unknown_event_package_and_hold(client, factory, on_sale):
    _, event, pkg = on_sale
    buyer = await factory.user()
    resp = await client.post("/api/events/999999/holds", headers=buyer.h,
                             json={"items": [{"package_id": pkg["id"], "quantity": 1}]})
    assert resp.status == 404
    resp = await client.post(f"/api/events/{event['id']}/holds", headers=buyer.h,
                             json={"items": [{"package_id": 999999, "quantity": 1}]})
    assert resp.status == 422 and (await resp.json())["error"] == "unknown_package"
    for bad in ("nonsense", "H1-doesnotexist", "H" + "9" * 70):
        assert (await client.get(f"/api/holds/{bad}", headers=buyer.h)).status == 404


async def test_draft_event_cannot_be_held(client, factory):
    provider = await factory.user("provider")
    event = await factory.event(provider)
    pkg = await factory.package(provider, event["id"])
    buyer = await factory.user()
    resp = await client.post(f"/api/events/{event['id']}/holds", headers=buyer.h,
                             json={"items": [{"package_id": pkg["id"], "quantity": 1}]})
    assert resp.status == 404


async def test_sale_window_refusals(client, factory):
    provider = await factory.user("provider")
    event = await factory.event(provider)
    later = await factory.package(provider, event["id"], opens_at=future(1))
    await client.post(f"/api/provider/events/{event['id']}/publish", headers=provider.h)
    buyer = await factory.user()
    resp = await client.post(f"/api/events/{event['id']}/holds", headers=buyer.h,
                             json={"items": [{"package_id": later["id"], "quantity": 1}]})
    assert resp.status == 409 and (await resp.json())["error"] == "sale_not_open"


async def test_http_rush_never_oversells(client, factory, on_sale):
    """60 buyers at once for 10 tickets over HTTP: exactly 10 held, the rest told sold_out."""
    _, event, pkg = on_sale
    buyers = [await factory.user() for _ in range(60)]

    async def attempt(b):
        resp = await client.post(f"/api/events/{event['id']}/holds", headers=b.h,
                                 json={"items": [{"package_id": pkg["id"], "quantity": 1}]})
        return resp.status, (await resp.json()).get("error")

    results = await asyncio.gather(*[attempt(b) for b in buyers])
    assert sum(s == 201 for s, _ in results) == 10
    assert {e for s, e in results if s != 201} == {"sold_out"}
    detail = await (await client.get(f"/api/events/{event['slug']}")).json()
    assert detail["packages"][0]["available"] == 0


async def test_check_availability_holds_nothing(client, factory, on_sale):
    _, event, pkg = on_sale
    resp = await client.post(f"/api/events/{event['id']}/check-availability",
                             json={"items": [{"package_id": pkg["id"], "quantity": 11}]})
    body = await resp.json()
    assert resp.status == 200 and body["ok"] is False and body["packages"][0]["available"] == 10
    resp = await client.post(f"/api/events/{event['id']}/check-availability",
                             json={"items": [{"package_id": pkg["id"], "quantity": 2}]})
    assert (await resp.json())["ok"] is True
    detail = await (await client.get(f"/api/events/{event['slug']}")).json()
    assert detail["packages"][0]["available"] == 10


async def test_seats_over_http_with_live_seat_map(client, factory):
    provider = await factory.user("provider")
    event = await factory.event(provider, requires_seating=True)
    pkg = await factory.package(provider, event["id"], price=1000)
    section = await factory.section(provider, event["id"], pkg["id"], rows=1, seats_per_row=4,
                                    row_price_modifiers={"A": 250})
    await client.post(f"/api/provider/events/{event['id']}/publish", headers=provider.h)
    seat_ids = [s["id"] for s in section["seats"]]
    a, b = await factory.user(), await factory.user()
    resp = await client.post(f"/api/events/{event['id']}/holds", headers=a.h, json={"seat_ids": seat_ids[:2]})
    assert resp.status == 201 and (await resp.json())["total"] == 2 * 1250
    resp = await client.post(f"/api/events/{event['id']}/holds", headers=b.h, json={"seat_ids": seat_ids[1:3]})
    body = await resp.json()
    assert resp.status == 409 and body["error"] == "seat_unavailable"
    assert body["fields"]["seat_ids"] == str(seat_ids[1])
    seating = await (await client.get(f"/api/events/{event['id']}/seating")).json()
    states = {s["id"]: s["status"] for s in seating["sections"][0]["seats"]}
    assert [states[i] for i in seat_ids] == ["reserved", "reserved", "available", "available"]
    check = await (await client.post(f"/api/events/{event['id']}/check-availability",
                                     json={"seat_ids": seat_ids[1:3]})).json()
    assert [s["state"] for s in check["seats"]] == ["held", "available"] and not check["ok"]


async def test_a_rush_hold_touches_redis_only(client, factory, on_sale):
    """Once caches are warm, an authenticated hold needs no Postgres: close the pool, still hold."""
    _, event, pkg = on_sale
    buyer = await factory.user()
    body = {"items": [{"package_id": pkg["id"], "quantity": 1}]}
    first = await client.post(f"/api/events/{event['id']}/holds", headers=buyer.h, json=body)
    assert first.status == 201
    await client.server.app[DB].close()
    assert (await client.delete(f"/api/holds/{(await first.json())['id']}", headers=buyer.h)).status == 204
    resp = await client.post(f"/api/events/{event['id']}/holds", headers=buyer.h, json=body)
    assert resp.status == 201, await resp.text()


async def test_listing_shows_live_availability(client, factory, on_sale):
    _, event, pkg = on_sale
    buyer = await factory.user()
    await client.post(f"/api/events/{event['id']}/holds", headers=buyer.h,
                      json={"items": [{"package_id": pkg["id"], "quantity": 4}]})
    listing = await (await client.get("/api/events")).json()
    [item] = [e for e in listing["items"] if e["id"] == event["id"]]
    assert item["available"] == 6 and item["package_ids"] == [pkg["id"]]
