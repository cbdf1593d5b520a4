"""The event page's form route over plain HTTP (bad input changes nothing, a double submit is
one hold), its live stream, and the pure parts: state words, stepper bounds, badges, covers."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient

from engine import catalog_types as t
from storefront.appkeys import INVENTORY
from storefront.buy.choosing import event_badge, opens_in, order_bounds, state_words
from storefront.covers import cover_svg
from storefront.wording import hold_problem
from tests.factories import Factory

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')


@pytest.fixture
async def shop(client: TestClient, factory: Factory):
    provider = await factory.user("provider")
    event = await factory.event(provider)
    pkg = await factory.package(provider, event["id"], name="Floor", price=100_000, capacity=5)
    assert (await client.post(f"/api/provider/events/{event['id']}/publish", headers=provider.h)).status == 200
    return event, pkg


async def page_form(client: TestClient, slug: str) -> dict[str, str]:
    html = await (await client.get(f"/events/{slug}")).text()
    return {"csrf_token": CSRF.search(html)[1], "idempotency_key": KEY.search(html)[1]}


async def held(client: TestClient, event_id: int, package_id: int) -> int:
    return (await client.server.app[INVENTORY].availability(event_id)).packages[package_id].held


async def test_the_form_holds_and_sends_the_buyer_to_the_basket(client, shop):
    event, pkg = shop
    form = await page_form(client, event["slug"])
    data = {**form, f"qty_{pkg['id']}": "2"}
    first = await client.post(f"/events/{event['slug']}/hold", data=data, allow_redirects=False)
    assert first.status == 303, await first.text()
    assert re.fullmatch(r"/holds/[A-Za-z0-9_.:-]+", first.headers["Location"])
    again = await client.post(f"/events/{event['slug']}/hold", data=data, allow_redirects=False)
    assert again.status == 303 and again.headers["Location"] == first.headers["Location"]
    assert await held(client, event["id"], pkg["id"]) == 2
    hold = await (await client.get("/api/holds/" + first.headers["Location"].rsplit("/", 1)[1])).json()
    assert hold["items"] == [{"package_id": pkg["id"], "quantity": 2, "unit_price": 100_000}]


@pytest.mark.parametrize("fields, status, words", [
    ({"qty_{pkg}": "abc"}, 422, "Choose a number of tickets for at least one kind."),
    ({"qty_{pkg}": "-1"}, 422, "Choose a number of tickets for at least one kind."),
    ({"qty_{pkg}": "99999"}, 422, "Choose a number of tickets for at least one kind."),
    ({"qty_{pkg}": "0"}, 422, "Choose a number of tickets for at least one kind."),
    ({"qty_{pkg}": "6"}, 409, "Only 5 left. Choose 5 or fewer."),
    ({"qty_999999": "1"}, 422, "That choice is not part of this event. Reload the page and choose again."),
    ({"qty_x": "1"}, 422, "That choice is not part of this event. Reload the page and choose again."),
    ({"seat": "12"}, 422, "That seat is not part of this event. Reload the page and choose again."),
    ({"mode": "best", "quantity": "zero"}, 422, "Choose how many seats you want, from 1 to 100."),
])
async def test_bad_input_is_refused_in_words_and_changes_nothing(client, shop, fields, status, words):
    event, pkg = shop
    form = await page_form(client, event["slug"])
    data = {**form, **{k.format(pkg=pkg["id"]): v for k, v in fields.items()}}
    resp = await client.post(f"/events/{event['slug']}/hold", data=data, allow_redirects=False)
    assert resp.status == status, await resp.text()
    html = await resp.text()
    assert re.search(r'role="alert" data-testid="problem"[^>]*>' + re.escape(words) + "</p>", html)
    assert await held(client, event["id"], pkg["id"]) == 0


async def test_without_the_csrf_token_nothing_is_held(client, shop):
    event, pkg = shop
    form = await page_form(client, event["slug"])
    resp = await client.post(f"/events/{event['slug']}/hold", allow_redirects=False, data={
        "idempotency_key": form["idempotency_key"], f"qty_{pkg['id']}": "1"})
    assert resp.status == 403
    resp = await client.post(f"/events/{event['slug']}/hold", allow_redirects=False, data={
        "csrf_token": "forged", f"qty_{pkg['id']}": "1"})
    assert resp.status == 403
    assert await held(client, event["id"], pkg["id"]) == 0


async def test_an_unknown_event_is_a_404(client, shop):
    event, _ = shop
    form = await page_form(client, event["slug"])
    resp = await client.post("/events/no-such-event/hold", data=form, allow_redirects=False)
    assert resp.status == 404


async def test_the_live_stream_sends_counts_then_changes(client, shop, factory):
    event, pkg = shop
    resp = await client.get(f"/events/{event['id']}/live")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")

    async def next_message() -> dict:
        while True:
            line = (await asyncio.wait_for(resp.content.readline(), 10)).decode()
            if line.startswith("data: "):
                return json.loads(line[6:])

    first = await next_message()
    assert first["full"] and first["v"] == 1 and first["status"] == "on_sale"
    assert first["packages"][str(pkg["id"])] == {"available": 5, "state": "on_sale",
                                                 "words": "5 left", "most": 5}
    buyer = await factory.user("buyer")
    assert (await client.post(f"/api/events/{event['id']}/holds", headers=buyer.h, json={
        "items": [{"package_id": pkg["id"], "quantity": 5}]})).status == 201
    later = await next_message()
    assert not later["full"]
    assert later["packages"][str(pkg["id"])] == {"available": 0, "state": "sold_out",
                                                 "words": "Sold out", "most": 0}
    resp.close()


async def test_the_live_stream_of_an_unknown_event_is_a_404(client):
    assert (await client.get("/events/424242/live")).status == 404


async def test_one_address_cannot_hold_an_unbounded_number_of_live_streams(client, shop):
    """KWIKA_LIVE_STREAMS_PER_IP (20) streams per address: the next is 429 with Retry-After and
    words (the page polls instead); the first ones keep streaming."""
    event, _ = shop
    streams = []
    try:
        for _ in range(100):
            resp = await client.get(f"/events/{event['id']}/live")
            streams.append(resp)
            if resp.status != 200:
                break
        refused = streams[-1]
        assert [r.status for r in streams] == [200] * 20 + [429]
        assert int(refused.headers["Retry-After"]) >= 1
        body = await refused.json()
        assert body["error"] == "rate_limited" and "live updates" in body["message"]
        assert (await asyncio.wait_for(streams[0].content.readline(), 10)).startswith(b"retry:")
    finally:
        for r in streams:
            r.close()


def test_live_streams_are_counted_per_address_and_per_process():
    from engine.errors import Busy, RateLimited
    from storefront.buy.live import LiveStreams

    streams = LiveStreams(per_address=2, per_process=3)
    streams.enter("1.2.3.4")
    streams.enter("1.2.3.4")
    with pytest.raises(RateLimited):
        streams.enter("1.2.3.4")
    streams.enter("5.6.7.8")
    with pytest.raises(Busy):
        streams.enter("9.9.9.9")
    streams.leave("1.2.3.4")
    streams.enter("9.9.9.9")
    for address in ("1.2.3.4", "5.6.7.8", "9.9.9.9"):
        streams.leave(address)
    assert (streams.total, streams.by_address) == (0, {})


async def test_a_live_client_that_stops_reading_is_dropped(monkeypatch):
    """A write that cannot go through (the client's buffers are full) ends the stream after
    WRITE_TIMEOUT_SECONDS, cutting the connection."""
    from types import SimpleNamespace

    from storefront.buy import live

    monkeypatch.setattr(live, "WRITE_TIMEOUT_SECONDS", 0.01)
    stuck = asyncio.get_running_loop().create_future()  # never done: the client reads nothing
    aborted = []
    request = SimpleNamespace(transport=SimpleNamespace(abort=lambda: aborted.append(True)))
    response = SimpleNamespace(write=lambda data: stuck)
    with pytest.raises(ConnectionResetError):
        await live.write(request, response, b": still here\n\n")
    assert aborted == [True]


# --- pure parts ----------------------------------------------------------------------------------
NOW = datetime(2027, 1, 10, 12, 0, tzinfo=UTC)


def package(**kw) -> t.Package:
    base = {"id": 1, "event_id": 1, "name": "P", "description": "", "price": 100, "capacity": 100,
            "min_per_order": 1, "max_per_order": 10, "per_buyer_limit": None, "opens_at": None,
            "closes_at": None, "sort_order": 0, "is_active": True, "available": 100,
            "sale_state": "on_sale"}
    return t.Package(**{**base, **kw})


@pytest.mark.parametrize("delta, words", [
    (timedelta(minutes=4, seconds=10), "Opens in 5 min"),
    (timedelta(hours=2, minutes=14), "Opens in 2 h 14 min"),
    (timedelta(hours=3), "Opens in 3 h"),
    (timedelta(days=3) - timedelta(seconds=5), "Opens in 3 days"),
])
def test_opens_in(delta, words):
    assert opens_in(NOW + delta, NOW) == words


@pytest.mark.parametrize("kw, words", [
    ({}, "On sale"), ({"available": 8}, "8 left"), ({"available": 12, "capacity": 1000}, "12 left"),
    ({"available": 150, "capacity": 1000}, "On sale"), ({"sale_state": "sold_out", "available": 0}, "Sold out"),
    ({"sale_state": "closed"}, "Sale ended"), ({"sale_state": "paused"}, "Paused"),
    ({"sale_state": "upcoming", "opens_at": NOW + timedelta(hours=2, minutes=14)}, "Opens in 2 h 14 min"),
])
def test_state_words(kw, words):
    assert state_words(package(**kw), NOW) == words


@pytest.mark.parametrize("kw, cap, bounds", [
    ({}, 10, (1, 10)), ({"available": 3}, 10, (1, 3)), ({"per_buyer_limit": 2}, 10, (1, 2)),
    ({}, 4, (1, 4)), ({"min_per_order": 2, "max_per_order": 6}, 10, (2, 6)),
    ({"sale_state": "upcoming"}, 10, (1, 0)), ({"available": 0, "sale_state": "sold_out"}, 10, (1, 0)),
])
def test_order_bounds(kw, cap, bounds):
    assert order_bounds(package(**kw), cap) == bounds


def summary(**kw) -> t.EventSummary:
    base = {"id": 1, "slug": "s", "title": "T", "category": "music", "venue": "", "city": "",
            "starts_at": NOW, "ends_at": NOW, "timezone": "UTC", "cover_image_url": None,
            "status": "published", "currency": "MWK", "requires_seating": False, "price_min": 100,
            "price_max": 100, "tickets_sold": 0, "available": 100}
    return t.EventSummary(**{**base, **kw})


@pytest.mark.parametrize("kw, live, badge", [
    ({}, "on_sale", "On sale"), ({"available": 5, "tickets_sold": 95}, "on_sale", "Few left"),
    ({"available": 0, "tickets_sold": 100}, "on_sale", "Sold out"), ({}, None, "Opens soon"),
    ({"price_min": None}, "on_sale", "Opens soon"), ({"status": "postponed"}, "paused", "Postponed"),
    ({"status": "cancelled"}, "closed", "Cancelled"), ({}, "paused", None),
])
def test_event_badge(kw, live, badge):
    assert event_badge(summary(**kw), live) == badge


def test_hold_problems_in_words():
    assert hold_problem("not_enough", {"available": "3", "package_id": "1"}) == \
        "Only 3 left. Choose 3 or fewer."
    assert hold_problem("seat_unavailable", {"seat_ids": "4"}) == "This seat was just taken. Pick another."
    assert hold_problem("basket_exists", {"hold_id": "x"}) == \
        "You already have tickets on hold for this event. Finish or remove them first."
    assert hold_problem("not_enough", {}, "only 3 left") == "Only 3 left."  # a field missing
    assert hold_problem("something_new", {}, "the engine says no") == "The engine says no."


def test_covers_are_deterministic_and_differ_by_title_and_category():
    one = cover_svg("music", "Lake of Stars", 1)
    assert one == cover_svg("music", "Lake of Stars", 1)
    assert one != cover_svg("music", "Lake of Shadows", 1)
    assert cover_svg("sports", "Lake of Stars", 1) != one
    assert one.startswith("<svg") and 'aria-hidden="true"' in one and "style=" not in one
    assert "http" not in one.replace("http://www.w3.org/2000/svg", "")


