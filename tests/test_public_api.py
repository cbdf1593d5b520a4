"""Public JSON API: searching and listing events, one event, its seat map. Anonymous callers,
real Postgres; data is made through the provider API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from storefront.appkeys import INVENTORY
from tests.factories import future

EV = "/api/provider/events"
LILONGWE = (-13.9626, 33.7741)
KM_PER_DEGREE_LAT = 111.19


async def error_of(resp, status: int, code: str | None = None) -> dict[str, Any]:
    body = await resp.json()
    assert resp.status == status, body
    assert set(body) == {"error", "message", "fields"}, body
    assert isinstance(body["error"], str) and isinstance(body["message"], str)
    assert isinstance(body["fields"], dict)
    if code is not None:
        assert body["error"] == code, body
    return body


@pytest.fixture
async def provider(factory):
    return await factory.user("provider")


async def publish(client, factory, provider, prices: tuple[int, ...] = (500_000,),
                  packages: list[dict] | None = None, **fields) -> dict[str, Any]:
    """A published event with packages at `prices` (or the `packages` given)."""
    event = await factory.event(provider, **fields)
    for spec in packages or [{"price": p} for p in prices]:
        await factory.package(provider, event["id"], **spec)
    resp = await client.post(f"{EV}/{event['id']}/publish", headers=provider.h)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def search(client, **params) -> dict[str, Any]:
    resp = await client.get("/api/events", params={k: str(v) for k, v in params.items()})
    body = await resp.json()
    assert resp.status == 200, body
    return body


async def slugs(client, **params) -> list[str]:
    return [e["slug"] for e in (await search(client, **params))["items"]]


# --- search ----------------------------------------------------------------------------------
@pytest.fixture
async def three(client, factory, provider) -> dict[str, dict]:
    return {
        "lake": await publish(client, factory, provider, title="Lake of Stars", slug="lake",
                              venue="Chintheche Inn", city="Nkhata Bay", category="music",
                              starts_at=future(10)),
        "jazz": await publish(client, factory, provider, title="Jazz Night", slug="jazz",
                              venue="Blantyre Club", city="Blantyre", category="music",
                              starts_at=future(20)),
        "comedy": await publish(client, factory, provider, title="Comedy Hour", slug="comedy",
                                venue="Capital Hotel", city="Lilongwe", category="comedy",
                                description="Stand-up from the best", starts_at=future(30)),
    }


@pytest.mark.parametrize("q, expected", [
    ("lake", ["lake"]),              # title
    ("LAKE", ["lake"]),              # any case
    ("star", ["lake"]),              # prefix of a title word
    ("chinth", ["lake"]),            # prefix of the venue
    ("nkhata", ["lake"]),            # city
    ("capital", ["comedy"]),         # venue
    ("blantyre", ["jazz"]),          # city and venue
    ("lilong", ["comedy"]),          # prefix of the city
    ("stand", ["comedy"]),           # description
    ("jazz night", ["jazz"]),        # every word must match
    ("lake jazz", []),
    ("zzz", []),
    ("lake & (stars", ["lake"]),     # tsquery syntax in the input is only text
    ("%", []),                       # LIKE wildcards are text too
    ("'", []),
    ("   ", ["lake", "jazz", "comedy"]),  # blank means no keyword
])
async def test_keyword_search(client, three, q, expected):
    assert await slugs(client, q=q) == expected


async def test_category_filter(client, three):
    assert await slugs(client, category="music") == ["lake", "jazz"]
    assert await slugs(client, category="comedy") == ["comedy"]
    assert await slugs(client, category="sports") == []


@pytest.mark.parametrize("city, expected", [
    ("Blantyre", ["jazz"]), ("blantyre", ["jazz"]), ("  BLANTYRE ", ["jazz"]),
    ("nkhata bay", ["lake"]), ("Blan", []),
])
async def test_city_filter_ignores_case(client, three, city, expected):
    assert await slugs(client, city=city) == expected


async def test_filters_combine(client, three):
    assert await slugs(client, category="music", city="blantyre") == ["jazz"]
    assert await slugs(client, category="comedy", q="lake") == []


async def test_date_range(client, three):
    day15, day25 = future(15), future(25)
    assert await slugs(client, date_from=day15.isoformat()) == ["jazz", "comedy"]
    assert await slugs(client, date_to=day25.isoformat()) == ["lake", "jazz"]
    assert await slugs(client, date_from=day15.isoformat(), date_to=day25.isoformat()) == ["jazz"]
    # what an HTML date input sends: a bare day, the whole of which is included
    jazz_day = datetime.fromisoformat(three["jazz"]["starts_at"]).astimezone(UTC).date()
    assert await slugs(client, date_from=jazz_day.isoformat(), date_to=jazz_day.isoformat()) == ["jazz"]


async def test_date_to_before_date_from_is_refused(client, three):
    resp = await client.get("/api/events", params={"date_from": future(20).isoformat(),
                                                   "date_to": future(10).isoformat()})
    assert "date_to" in (await error_of(resp, 422))["fields"]


async def test_radius_filter(client, factory, provider):
    lat, lng = LILONGWE
    await publish(client, factory, provider, slug="near", latitude=lat + 5 / KM_PER_DEGREE_LAT,
                  longitude=lng)
    await publish(client, factory, provider, slug="far", latitude=lat + 300 / KM_PER_DEGREE_LAT,
                  longitude=lng)
    await publish(client, factory, provider, slug="nowhere")  # no coordinates
    assert await slugs(client, lat=lat, lng=lng, radius_km=50) == ["near"]
    assert await slugs(client, lat=lat, lng=lng, radius_km=4) == []
    assert sorted(await slugs(client, lat=lat, lng=lng, radius_km=350)) == ["far", "near"]
    assert await slugs(client, lat=lat, lng=lng) == ["near"]  # 50 km by default
    assert len(await slugs(client)) == 3


async def test_radius_search_at_the_far_side_of_the_globe(client, factory, provider):
    # a point and (almost) its antipode: the haversine term is 1 give or take rounding
    lat, lng = -69.66733558726811, -157.15354238292352
    await publish(client, factory, provider, slug="far-south", latitude=lat, longitude=lng)
    await publish(client, factory, provider, slug="next-door", latitude=-lat, longitude=lng + 180.001)
    assert await slugs(client, lat=-lat, lng=lng + 180, radius_km=20_000) == ["next-door"]
    assert await slugs(client, lat=lat, lng=lng, radius_km=1) == ["far-south"]


async def test_radius_needs_both_coordinates(client):
    resp = await client.get("/api/events", params={"lat": "-13.9"})
    assert "lng" in (await error_of(resp, 422))["fields"]


@pytest.fixture
async def ranked(client, factory, provider, db) -> None:
    """a: soonest, cheapest-but-one, least sold; c: latest, cheapest, most sold."""
    a = await publish(client, factory, provider, slug="a", prices=(2_000, 9_000), starts_at=future(5))
    b = await publish(client, factory, provider, slug="b", prices=(5_000,), starts_at=future(6))
    c = await publish(client, factory, provider, slug="c", prices=(1_000, 3_000), starts_at=future(7))
    for event, sold in ((a, 3), (b, 40), (c, 100)):
        await db.execute("UPDATE events SET tickets_sold = $2 WHERE id = $1", event["id"], sold)


@pytest.mark.parametrize("params, expected", [
    ({}, ["a", "b", "c"]),
    ({"sort": "date"}, ["a", "b", "c"]),
    ({"sort": "date", "order": "desc"}, ["c", "b", "a"]),
    ({"sort": "popularity"}, ["c", "b", "a"]),  # most popular first by default
    ({"sort": "popularity", "order": "asc"}, ["a", "b", "c"]),
    ({"sort": "price"}, ["c", "a", "b"]),       # by the cheapest ticket
    ({"sort": "price", "order": "desc"}, ["b", "a", "c"]),
])
async def test_sorting(client, ranked, params, expected):
    assert await slugs(client, **params) == expected


async def test_summary_fields(client, ranked):
    items = {e["slug"]: e for e in (await search(client))["items"]}
    assert (items["a"]["price_min"], items["a"]["price_max"]) == (2_000, 9_000)
    assert items["c"]["tickets_sold"] == 100
    # availability of an event on sale is the live stock in Redis, not the denormalised counter
    assert items["c"]["available"] == 2 * 100
    assert items["a"]["status"] == "published" and items["a"]["currency"] == "MWK"


async def test_pagination(client, factory, provider):
    made = [await publish(client, factory, provider, slug=f"p{i}", starts_at=future(10 + i))
            for i in range(5)]
    page1 = await search(client, per_page=2)
    assert (page1["total"], page1["pages"], page1["page"], page1["per_page"]) == (5, 3, 1, 2)
    assert [e["slug"] for e in page1["items"]] == ["p0", "p1"]
    page2 = await search(client, per_page=2, page=2)
    assert [e["slug"] for e in page2["items"]] == ["p2", "p3"]
    assert [e["slug"] for e in (await search(client, per_page=2, page=3))["items"]] == ["p4"]
    beyond = await search(client, per_page=2, page=4)
    assert beyond["items"] == [] and beyond["total"] == 5 and beyond["pages"] == 3
    assert len((await search(client, per_page=100))["items"]) == len(made)
    assert (await search(client))["per_page"] == 12
    filtered = await search(client, per_page=1, q="nothing-matches")
    assert (filtered["total"], filtered["pages"], filtered["items"]) == (0, 1, [])


@pytest.mark.parametrize("params, field", [
    ({"per_page": "0"}, "per_page"), ({"per_page": "101"}, "per_page"), ({"page": "0"}, "page"),
])
async def test_page_bounds(client, params, field):
    resp = await client.get("/api/events", params=params)
    assert field in (await error_of(resp, 422))["fields"]


async def test_only_published_and_postponed_upcoming_events_are_listed(client, factory, provider):
    await factory.event(provider, slug="draft")
    await publish(client, factory, provider, slug="live")
    postponed = await publish(client, factory, provider, slug="postponed")
    cancelled = await publish(client, factory, provider, slug="cancelled")
    completed = await publish(client, factory, provider, slug="completed")
    for event, action in ((postponed, "postpone"), (cancelled, "cancel"), (completed, "complete")):
        kwargs = {"json": {}} if action == "postpone" else {}
        resp = await client.post(f"{EV}/{event['id']}/{action}", headers=provider.h, **kwargs)
        assert resp.status == 200
    now = datetime.now(UTC)
    await publish(client, factory, provider, slug="past", starts_at=now - timedelta(days=2),
                  ends_at=now - timedelta(days=1))
    await publish(client, factory, provider, slug="running", starts_at=now - timedelta(hours=1),
                  ends_at=now + timedelta(hours=3))
    assert await slugs(client) == ["running", "live", "postponed"]
    assert (await search(client))["total"] == 3
    # past events show up when asked for by date; drafts and cancelled never do
    assert await slugs(client, date_from=(now - timedelta(days=30)).isoformat(),
                       date_to=(now + timedelta(days=365)).isoformat()) == [
        "past", "running", "live", "postponed"]


# --- one event -------------------------------------------------------------------------------
async def test_event_detail_with_packages_and_sale_states(client, factory, provider):
    now = datetime.now(UTC).replace(microsecond=0)
    event = await factory.event(provider, slug="detail", title="Detail Show")
    specs = {
        "Now": {"price": 3_000, "capacity": 40},
        "Soon": {"price": 9_000, "capacity": 10, "opens_at": now + timedelta(days=2)},
        "Over": {"price": 1_000, "capacity": 5, "opens_at": now - timedelta(days=3),
                 "closes_at": now - timedelta(days=1)},
        "Gone": {"price": 2_000, "capacity": 0},
        "Hidden": {"price": 50, "capacity": 7},
    }
    made = {name: await factory.package(provider, event["id"], name=name, **spec)
            for name, spec in specs.items()}
    await client.patch(f"{EV}/{event['id']}/packages/{made['Hidden']['id']}",
                       json={"is_active": False}, headers=provider.h)
    assert (await client.post(f"{EV}/{event['id']}/publish", headers=provider.h)).status == 200
    resp = await client.get("/api/events/detail")
    assert resp.status == 200
    body = await resp.json()
    assert body["title"] == "Detail Show" and body["status"] == "published"
    states = {p["name"]: (p["sale_state"], p["available"]) for p in body["packages"]}
    assert states == {"Now": ("on_sale", 40), "Soon": ("upcoming", 10), "Over": ("closed", 5),
                      "Gone": ("sold_out", 0)}
    assert (body["price_min"], body["price_max"]) == (1_000, 9_000)  # inactive "Hidden" excluded
    assert body["available"] == 55


async def test_event_detail_shows_the_provider(client, factory, db):
    provider = await factory.user("provider", business_name="Lakeside Promotions")
    await publish(client, factory, provider, slug="who")
    assert (await (await client.get("/api/events/who")).json())["provider_name"] == "Lakeside Promotions"


async def test_drafts_and_unknown_slugs_are_404(client, factory, provider):
    await factory.event(provider, slug="secret-draft")
    for slug in ("secret-draft", "no-such-event"):
        body = await error_of(await client.get(f"/api/events/{slug}"), 404, "not_found")
        assert slug in body["message"] and body["fields"] == {}


async def test_cancelled_event_page_still_answers_with_its_status(client, factory, provider):
    event = await publish(client, factory, provider, slug="called-off")
    await client.post(f"{EV}/{event['id']}/cancel", headers=provider.h)
    body = await (await client.get("/api/events/called-off")).json()
    assert body["status"] == "cancelled"


# --- seat map --------------------------------------------------------------------------------
async def test_public_seat_map_shows_states_and_prices(client, factory, provider, db):
    event = await factory.event(provider, requires_seating=True, currency="USD")
    package = await factory.package(provider, event["id"], price=4_000)
    section = await factory.section(provider, event["id"], package["id"], name="Main", rows=2,
                                    seats_per_row=2, row_price_modifiers={"A": 1_500})
    ids = [s["id"] for s in section["seats"]]
    assert (await client.post(f"{EV}/{event['id']}/publish", headers=provider.h)).status == 200
    await client.post(f"{EV}/{event['id']}/seats/block", json={"seat_ids": [ids[1]]}, headers=provider.h)
    # live states come from the inventory: one seat sold, one held
    inventory = client.server.app[INVENTORY]
    sold = await inventory.hold(event["id"], "u:1", seat_ids=[ids[2]])
    await inventory.confirm(event["id"], sold, "ORD-seat-map")
    await inventory.hold(event["id"], "u:2", seat_ids=[ids[3]])
    resp = await client.get(f"/api/events/{event['id']}/seating")
    assert resp.status == 200
    body = await resp.json()
    assert body["event_id"] == event["id"] and body["currency"] == "USD"
    [main] = body["sections"]
    assert (main["name"], main["package_id"], main["capacity"]) == ("Main", package["id"], 4)
    assert [(s["seat_number"], s["status"], s["price"]) for s in main["seats"]] == [
        ("A1", "available", 5_500), ("A2", "blocked", 5_500),
        ("B1", "sold", 4_000), ("B2", "reserved", 4_000)]


async def test_seat_map_of_a_draft_or_unknown_event_is_404(client, factory, provider):
    event = await factory.event(provider, requires_seating=True)
    package = await factory.package(provider, event["id"])
    await factory.section(provider, event["id"], package["id"])
    for event_id in (event["id"], 987_654):
        await error_of(await client.get(f"/api/events/{event_id}/seating"), 404, "not_found")


async def test_seat_map_of_an_unseated_event_is_empty(client, factory, provider):
    event = await publish(client, factory, provider)
    body = await (await client.get(f"/api/events/{event['id']}/seating")).json()
    assert body["sections"] == []


async def test_event_details_are_read_once_a_rush_but_changes_show_at_once(client, factory,
                                                                           provider):
    """A rush of views reads the catalog once per process every two seconds; the stock stays
    live per view, and the provider's own change clears the cache of this process."""
    from storefront.appkeys import CATALOG

    event = await factory.published_event(provider)
    slug = event["slug"]
    catalog = client.app[CATALOG]
    reads = []
    real = catalog.event_detail

    async def counted(**kw):
        reads.append(kw)
        return await real(**kw)

    catalog.event_detail = counted
    try:
        first = await (await client.get(f"/api/events/{slug}")).json()
        pkg = first["packages"][0]
        for _ in range(20):
            assert (await client.get(f"/api/events/{slug}")).status == 200
        assert len(reads) <= 1  # (none when the publish already warmed it)
        resp = await client.post(f"/api/events/{event['id']}/holds",
                                 json={"items": [{"package_id": pkg["id"], "quantity": 2}]})
        assert resp.status == 201, await resp.text()
        after = await (await client.get(f"/api/events/{slug}")).json()
        assert after["packages"][0]["available"] == first["packages"][0]["available"] - 2
        resp = await client.patch(f"/api/provider/events/{event['id']}",
                                  json={"title": "Renamed at once"}, headers=provider.h)
        assert resp.status == 200, await resp.text()
        assert (await (await client.get(f"/api/events/{slug}")).json())["title"] == \
            "Renamed at once"
    finally:
        catalog.event_detail = real
