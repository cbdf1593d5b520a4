"""Provider JSON API: events and their lifecycle, packages, sections and seats, and who may
touch them. Everything goes through HTTP against real Postgres; refusals are checked to leave
the database exactly as it was."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from storefront.appkeys import ACCOUNTS
from tests.factories import future

EV = "/api/provider/events"

# the lifecycle, written out here independently of engine.catalog.TRANSITIONS
ALLOWED = {
    ("draft", "publish"): "published",
    ("draft", "cancel"): "cancelled",
    ("published", "cancel"): "cancelled",
    ("published", "postpone"): "postponed",
    ("published", "complete"): "completed",
    ("postponed", "publish"): "published",
    ("postponed", "cancel"): "cancelled",
}
STATES = ("draft", "published", "postponed", "cancelled", "completed")
ACTIONS = ("publish", "cancel", "postpone", "complete")


async def error_of(resp, status: int, code: str | None = None) -> dict[str, Any]:
    """The error body, after checking the status and the exact error shape."""
    body = await resp.json()
    assert resp.status == status, body
    assert set(body) == {"error", "message", "fields"}, body
    assert isinstance(body["error"], str) and isinstance(body["message"], str) and body["message"]
    assert isinstance(body["fields"], dict)
    if code is not None:
        assert body["error"] == code, body
    return body


async def snapshot(db) -> dict[str, list[dict]]:
    """Every catalog row, to prove that a refused request changed nothing."""
    out = {}
    for table in ("events", "ticket_packages", "sections", "seats"):
        out[table] = [dict(r) for r in await db.fetch(f"SELECT * FROM {table} ORDER BY id")]
    return out


async def act(client, actor, event_id: int, action: str, body: dict | None = None):
    if action == "postpone":
        return await client.post(f"{EV}/{event_id}/postpone", json=body or {}, headers=actor.h)
    return await client.post(f"{EV}/{event_id}/{action}", headers=actor.h)


async def event_in_state(client, factory, provider, state: str) -> dict[str, Any]:
    """A provider's event (with one package) brought to `state` through the API."""
    event = await factory.event(provider)
    await factory.package(provider, event["id"])
    path = {"draft": [], "published": ["publish"], "postponed": ["publish", "postpone"],
            "cancelled": ["cancel"], "completed": ["publish", "complete"]}[state]
    for action in path:
        resp = await act(client, provider, event["id"], action)
        assert resp.status == 200, await resp.text()
        event = await resp.json()
    assert event["status"] == state
    return event


@pytest.fixture
async def provider(factory):
    return await factory.user("provider")


@pytest.fixture
async def other(factory):
    return await factory.user("provider")


# --- creating and editing events ------------------------------------------------------------
async def test_create_event_is_a_draft_stored_as_sent(client, provider, db):
    starts = future(40)
    body = {"title": "Lake of Stars", "starts_at": starts.isoformat(),
            "ends_at": (starts + timedelta(hours=6)).isoformat(), "description": "Music by the lake",
            "category": "music", "venue": "Chintheche Inn", "address": "M5", "city": "Nkhata Bay",
            "latitude": -11.84, "longitude": 34.16, "timezone": "Africa/Blantyre",
            "cover_image_url": "https://img.example/lake.jpg", "currency": "USD",
            "uses_waiting_room": True}
    resp = await client.post(EV, json=body, headers=provider.h)
    assert resp.status == 201, await resp.text()
    event = await resp.json()
    assert event["status"] == "draft" and event["published_at"] is None
    assert event["slug"] == "lake-of-stars"
    assert event["provider_id"] == provider.user["provider_id"]
    row = await db.fetchrow("SELECT * FROM events WHERE id = $1", event["id"])
    assert row["title"] == "Lake of Stars" and row["city"] == "Nkhata Bay"
    assert row["starts_at"] == starts and row["currency"] == "USD" and row["uses_waiting_room"]
    assert row["latitude"] == -11.84 and row["provider_id"] == provider.user["provider_id"]
    listed = await (await client.get(EV, headers=provider.h)).json()
    assert [e["id"] for e in listed] == [event["id"]]


async def test_provider_lists_only_their_own_events(client, factory, provider, other):
    mine = await factory.event(provider)
    await factory.event(other)
    listed = await (await client.get(EV, headers=provider.h)).json()
    assert [e["id"] for e in listed] == [mine["id"]]


@pytest.mark.parametrize("title, slug", [
    ("Lake of Stars 2026!", "lake-of-stars-2026"),
    ("  Café Ñoño -- Night  ", "cafe-nono-night"),
    ("!!!", "event"),
])
async def test_slug_is_generated_from_the_title(factory, provider, title, slug):
    assert (await factory.event(provider, title=title))["slug"] == slug


async def test_same_title_gets_numbered_slugs(factory, provider, other):
    first = await factory.event(provider, title="Sand Festival")
    second = await factory.event(provider, title="Sand Festival")
    third = await factory.event(other, title="Sand Festival")
    assert [first["slug"], second["slug"], third["slug"]] == [
        "sand-festival", "sand-festival-2", "sand-festival-3"]


async def test_explicit_slug_that_is_taken_conflicts(client, factory, provider, other, db):
    await factory.event(provider, slug="my-show")
    before = await snapshot(db)
    starts = future(10)
    for actor in (provider, other):
        resp = await client.post(EV, json={"title": "Another", "slug": "my-show",
                                           "starts_at": starts.isoformat(),
                                           "ends_at": (starts + timedelta(hours=1)).isoformat()},
                                 headers=actor.h)
        body = await error_of(resp, 409, "slug_taken")
        assert "slug" in body["fields"]
    assert await snapshot(db) == before


async def test_slug_editable_while_draft_and_fixed_after_publishing(client, factory, provider, db):
    await factory.event(provider, slug="taken-slug")
    event = await factory.event(provider, title="Original")
    url = f"{EV}/{event['id']}"
    resp = await client.patch(url, json={"slug": "renamed"}, headers=provider.h)
    assert resp.status == 200 and (await resp.json())["slug"] == "renamed"
    body = await error_of(await client.patch(url, json={"slug": "taken-slug"}, headers=provider.h),
                          409, "slug_taken")
    assert body["fields"] == {"slug": "already in use"}
    await factory.package(provider, event["id"])
    assert (await client.post(f"{url}/publish", headers=provider.h)).status == 200
    before = await snapshot(db)
    body = await error_of(await client.patch(url, json={"slug": "new-one"}, headers=provider.h), 422)
    assert "slug" in body["fields"]
    assert await snapshot(db) == before
    # sending the current slug again is not a change
    resp = await client.patch(url, json={"slug": "renamed", "title": "Retitled"}, headers=provider.h)
    assert resp.status == 200, await resp.text()
    assert await db.fetchval("SELECT slug FROM events WHERE id = $1", event["id"]) == "renamed"
    assert await db.fetchval("SELECT title FROM events WHERE id = $1", event["id"]) == "Retitled"


async def test_patch_changes_only_the_fields_sent(client, factory, provider, db):
    event = await factory.event(provider, venue="Old Hall", city="Zomba")
    resp = await client.patch(f"{EV}/{event['id']}", json={"venue": "New Hall", "latitude": -15.4,
                                                            "longitude": 35.3}, headers=provider.h)
    assert resp.status == 200, await resp.text()
    row = await db.fetchrow("SELECT * FROM events WHERE id = $1", event["id"])
    assert (row["venue"], row["city"], row["latitude"], row["title"]) == (
        "New Hall", "Zomba", -15.4, event["title"])
    assert row["updated_at"] > datetime.fromisoformat(event["updated_at"])
    # a null clears a nullable field
    resp = await client.patch(f"{EV}/{event['id']}", json={"latitude": None, "longitude": None},
                              headers=provider.h)
    assert resp.status == 200
    assert await db.fetchval("SELECT latitude FROM events WHERE id = $1", event["id"]) is None


async def test_patch_dates_are_checked_against_the_stored_ones(client, factory, provider, db):
    event = await factory.event(provider)
    before = await snapshot(db)
    starts = datetime.fromisoformat(event["starts_at"])
    resp = await client.patch(f"{EV}/{event['id']}",
                              json={"ends_at": (starts - timedelta(hours=1)).isoformat()},
                              headers=provider.h)
    assert "ends_at" in (await error_of(resp, 422))["fields"]
    assert await snapshot(db) == before


async def test_seating_switch_is_fixed_after_publishing(client, factory, provider, db):
    event = await factory.published_event(provider)
    before = await snapshot(db)
    resp = await client.patch(f"{EV}/{event['id']}", json={"requires_seating": True}, headers=provider.h)
    assert "requires_seating" in (await error_of(resp, 422))["fields"]
    assert await snapshot(db) == before


@pytest.mark.parametrize("state", ["cancelled", "completed"])
async def test_final_events_cannot_be_edited(client, factory, provider, db, state):
    event = await event_in_state(client, factory, provider, state)
    before = await snapshot(db)
    resp = await client.patch(f"{EV}/{event['id']}", json={"title": "Changed"}, headers=provider.h)
    await error_of(resp, 409, "invalid_transition")
    resp = await client.post(f"{EV}/{event['id']}/packages", json={
        "name": "Late", "price": 1, "capacity": 1}, headers=provider.h)
    await error_of(resp, 409, "invalid_transition")
    assert await snapshot(db) == before


@pytest.mark.parametrize("timezone", ["Europe/London", "UTC", "America/Argentina/Buenos_Aires"])
async def test_real_time_zones_are_accepted(factory, provider, timezone):
    assert (await factory.event(provider, timezone=timezone))["timezone"] == timezone


@pytest.mark.parametrize("timezone", ["Mars/Olympus", "utc", "Europe/../UTC", "/etc/localtime",
                                      "localtime", "+02:00"])
async def test_unknown_time_zones_are_refused(client, factory, provider, db, timezone):
    starts = future(5)
    resp = await client.post(EV, json={"title": "Zoned", "timezone": timezone,
                                       "starts_at": starts.isoformat(),
                                       "ends_at": (starts + timedelta(hours=1)).isoformat()},
                             headers=provider.h)
    assert "timezone" in (await error_of(resp, 422))["fields"]
    assert await db.fetchval("SELECT count(*) FROM events") == 0
    event = await factory.event(provider)
    before = await snapshot(db)
    resp = await client.patch(f"{EV}/{event['id']}", json={"timezone": timezone}, headers=provider.h)
    assert "timezone" in (await error_of(resp, 422))["fields"]
    assert await snapshot(db) == before


async def test_latitude_without_longitude_is_refused(client, provider, db):
    starts = future(5)
    resp = await client.post(EV, json={"title": "Half a place", "latitude": -13.9,
                                       "starts_at": starts.isoformat(),
                                       "ends_at": (starts + timedelta(hours=1)).isoformat()},
                             headers=provider.h)
    assert "longitude" in (await error_of(resp, 422))["fields"]
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def test_admin_may_edit_any_event_but_owns_none(client, factory, provider, db):
    admin = await factory.user("admin")
    event = await factory.event(provider)
    resp = await client.patch(f"{EV}/{event['id']}", json={"title": "Fixed by admin"}, headers=admin.h)
    assert resp.status == 200, await resp.text()
    assert await db.fetchval("SELECT title FROM events WHERE id = $1", event["id"]) == "Fixed by admin"
    starts = future(3)
    resp = await client.post(EV, json={"title": "Admin's own", "starts_at": starts.isoformat(),
                                       "ends_at": (starts + timedelta(hours=1)).isoformat()},
                             headers=admin.h)
    await error_of(resp, 403)
    assert await db.fetchval("SELECT count(*) FROM events") == 1


# --- lifecycle -------------------------------------------------------------------------------
@pytest.mark.parametrize("state, action", [(s, a) for s in STATES for a in ACTIONS])
async def test_lifecycle_state_machine(client, factory, provider, db, state, action):
    event = await event_in_state(client, factory, provider, state)
    before = await snapshot(db)
    resp = await act(client, provider, event["id"], action)
    target = ALLOWED.get((state, action))
    stored = await db.fetchval("SELECT status FROM events WHERE id = $1", event["id"])
    if target is None:
        body = await error_of(resp, 409, "invalid_transition")
        assert state in body["message"]
        assert await snapshot(db) == before
    else:
        body = await resp.json()
        assert resp.status == 200, body
        assert body["status"] == target == stored


async def test_publish_stamps_published_at_once(client, factory, provider, db):
    event = await factory.published_event(provider)
    first = event["published_at"]
    assert first is not None
    for action in ("postpone", "publish"):
        assert (await act(client, provider, event["id"], action)).status == 200
    row = await db.fetchrow("SELECT status, published_at FROM events WHERE id = $1", event["id"])
    assert row["status"] == "published"
    assert row["published_at"] == datetime.fromisoformat(first)


async def test_postpone_moves_dates_when_given(client, factory, provider, db):
    event = await factory.published_event(provider)
    old_start = datetime.fromisoformat(event["starts_at"])
    old_end = datetime.fromisoformat(event["ends_at"])
    new_start = old_start + timedelta(days=7)
    resp = await act(client, provider, event["id"], "postpone", {"starts_at": new_start.isoformat()})
    assert resp.status == 200, await resp.text()
    row = await db.fetchrow("SELECT * FROM events WHERE id = $1", event["id"])
    assert row["status"] == "postponed"
    assert row["starts_at"] == new_start
    assert row["ends_at"] == new_start + (old_end - old_start)  # same length


async def test_postpone_without_dates_keeps_them(client, factory, provider, db):
    event = await factory.published_event(provider)
    resp = await act(client, provider, event["id"], "postpone", {})
    assert resp.status == 200, await resp.text()
    row = await db.fetchrow("SELECT * FROM events WHERE id = $1", event["id"])
    assert row["starts_at"] == datetime.fromisoformat(event["starts_at"])
    assert row["ends_at"] == datetime.fromisoformat(event["ends_at"])


@pytest.mark.parametrize("dates, field", [
    ({"starts_at": "+10", "ends_at": "+9"}, "ends_at"),
    ({"starts_at": "naive"}, "starts_at"),
])
async def test_postpone_with_bad_dates_changes_nothing(client, factory, provider, db, dates, field):
    event = await factory.published_event(provider)
    base = future(60)
    body = {}
    for key, value in dates.items():
        body[key] = (base.replace(tzinfo=None).isoformat() if value == "naive"
                     else (base + timedelta(hours=int(value))).isoformat())
    before = await snapshot(db)
    resp = await act(client, provider, event["id"], "postpone", body)
    assert field in (await error_of(resp, 422))["fields"]
    assert await snapshot(db) == before


async def test_unverified_provider_cannot_publish(client, factory, db):
    pending = await factory.user("provider", verified=False)
    assert pending.user["provider_status"] == "pending"
    event = await factory.event(pending)  # drafts are allowed
    await factory.package(pending, event["id"])
    before = await snapshot(db)
    await error_of(await act(client, pending, event["id"], "publish"), 403, "provider_not_verified")
    assert await snapshot(db) == before
    await client.server.app[ACCOUNTS].set_provider_status(pending.user["provider_id"], "verified")
    resp = await act(client, pending, event["id"], "publish")
    assert resp.status == 200 and (await resp.json())["status"] == "published"


async def test_publish_needs_an_active_package(client, factory, provider, db):
    event = await factory.event(provider)
    await error_of(await act(client, provider, event["id"], "publish"), 422, "not_publishable")
    package = await factory.package(provider, event["id"])
    resp = await client.patch(f"{EV}/{event['id']}/packages/{package['id']}",
                              json={"is_active": False}, headers=provider.h)
    assert resp.status == 200
    before = await snapshot(db)
    await error_of(await act(client, provider, event["id"], "publish"), 422, "not_publishable")
    assert await snapshot(db) == before
    await factory.package(provider, event["id"])
    assert (await act(client, provider, event["id"], "publish")).status == 200


async def test_seated_event_needs_seats_to_publish(client, factory, provider, db):
    event = await factory.event(provider, requires_seating=True)
    package = await factory.package(provider, event["id"])
    before = await snapshot(db)
    await error_of(await act(client, provider, event["id"], "publish"), 422, "not_publishable")
    assert await snapshot(db) == before
    await factory.section(provider, event["id"], package["id"])
    assert (await act(client, provider, event["id"], "publish")).status == 200


# --- packages --------------------------------------------------------------------------------
async def test_create_package_stores_its_rules(client, factory, provider, db):
    event = await factory.event(provider)
    opens, closes = future(1), future(20)
    resp = await client.post(f"{EV}/{event['id']}/packages", json={
        "name": "VIP", "price": 2_500_000, "capacity": 50, "description": "Front",
        "min_per_order": 2, "max_per_order": 4, "per_buyer_limit": 6, "opens_at": opens.isoformat(),
        "closes_at": closes.isoformat(), "sort_order": 3}, headers=provider.h)
    assert resp.status == 201, await resp.text()
    package = await resp.json()
    assert package["event_id"] == event["id"] and package["is_active"] is True
    row = await db.fetchrow("SELECT * FROM ticket_packages WHERE id = $1", package["id"])
    assert (row["name"], row["price"], row["capacity"], row["min_per_order"], row["max_per_order"],
            row["per_buyer_limit"], row["opens_at"], row["closes_at"], row["sort_order"]) == (
        "VIP", 2_500_000, 50, 2, 4, 6, opens, closes, 3)


@pytest.mark.parametrize("closes_offset_days", [0, -1])
async def test_package_window_must_close_after_it_opens(client, factory, provider, db,
                                                        closes_offset_days):
    event = await factory.event(provider)
    opens = future(5)
    before = await snapshot(db)
    resp = await client.post(f"{EV}/{event['id']}/packages", json={
        "name": "Early", "price": 100, "capacity": 10, "opens_at": opens.isoformat(),
        "closes_at": (opens + timedelta(days=closes_offset_days)).isoformat()}, headers=provider.h)
    assert "closes_at" in (await error_of(resp, 422))["fields"]
    assert await snapshot(db) == before


async def test_package_window_patch_is_checked_against_stored_window(client, factory, provider, db):
    event = await factory.event(provider)
    package = await factory.package(provider, event["id"], opens_at=future(5), closes_at=future(9))
    before = await snapshot(db)
    resp = await client.patch(f"{EV}/{event['id']}/packages/{package['id']}",
                              json={"closes_at": future(4).isoformat()}, headers=provider.h)
    assert "closes_at" in (await error_of(resp, 422))["fields"]
    resp = await client.patch(f"{EV}/{event['id']}/packages/{package['id']}",
                              json={"opens_at": future(10).isoformat()}, headers=provider.h)
    await error_of(resp, 422)
    assert await snapshot(db) == before
    # clearing the close makes any opening fine
    resp = await client.patch(f"{EV}/{event['id']}/packages/{package['id']}",
                              json={"closes_at": None, "opens_at": future(10).isoformat()},
                              headers=provider.h)
    assert resp.status == 200, await resp.text()
    assert await db.fetchval("SELECT closes_at FROM ticket_packages WHERE id = $1", package["id"]) is None


async def test_min_and_max_per_order(client, factory, provider, db):
    event = await factory.event(provider)
    before = await snapshot(db)
    resp = await client.post(f"{EV}/{event['id']}/packages", json={
        "name": "Pair", "price": 1, "capacity": 10, "min_per_order": 3, "max_per_order": 2},
        headers=provider.h)
    assert "max_per_order" in (await error_of(resp, 422))["fields"]
    assert await snapshot(db) == before
    package = await factory.package(provider, event["id"], min_per_order=2, max_per_order=2)
    assert (package["min_per_order"], package["max_per_order"]) == (2, 2)
    before = await snapshot(db)
    resp = await client.patch(f"{EV}/{event['id']}/packages/{package['id']}",
                              json={"min_per_order": 3}, headers=provider.h)
    await error_of(resp, 422)
    assert await snapshot(db) == before
    resp = await client.patch(f"{EV}/{event['id']}/packages/{package['id']}",
                              json={"min_per_order": 3, "max_per_order": 8}, headers=provider.h)
    assert resp.status == 200
    row = await db.fetchrow("SELECT min_per_order, max_per_order FROM ticket_packages WHERE id = $1",
                            package["id"])
    assert tuple(row) == (3, 8)


async def test_duplicate_package_name_conflicts(client, factory, provider, db):
    event = await factory.event(provider)
    await factory.package(provider, event["id"], name="General")
    second = await factory.package(provider, event["id"], name="VIP")
    before = await snapshot(db)
    resp = await client.post(f"{EV}/{event['id']}/packages",
                             json={"name": "General", "price": 1, "capacity": 1}, headers=provider.h)
    assert "name" in (await error_of(resp, 409, "package_name_taken"))["fields"]
    resp = await client.patch(f"{EV}/{event['id']}/packages/{second['id']}", json={"name": "General"},
                              headers=provider.h)
    await error_of(resp, 409, "package_name_taken")
    assert await snapshot(db) == before
    other_event = await factory.event(provider)
    assert (await factory.package(provider, other_event["id"], name="General"))["name"] == "General"


async def test_update_package_fields(client, factory, provider, db):
    event = await factory.event(provider)
    package = await factory.package(provider, event["id"], price=1000, capacity=10)
    resp = await client.patch(f"{EV}/{event['id']}/packages/{package['id']}",
                              json={"price": 1500, "capacity": 20, "description": "Now bigger"},
                              headers=provider.h)
    assert resp.status == 200, await resp.text()
    row = await db.fetchrow("SELECT * FROM ticket_packages WHERE id = $1", package["id"])
    assert (row["price"], row["capacity"], row["description"], row["name"]) == (
        1500, 20, "Now bigger", package["name"])


async def test_package_must_belong_to_the_event_in_the_path(client, factory, provider, db):
    event = await factory.event(provider)
    sibling = await factory.event(provider)
    package = await factory.package(provider, sibling["id"])
    before = await snapshot(db)
    for event_id, package_id in ((event["id"], package["id"]), (sibling["id"], 999_999)):
        resp = await client.patch(f"{EV}/{event_id}/packages/{package_id}", json={"price": 1},
                                  headers=provider.h)
        await error_of(resp, 404, "not_found")
    assert await snapshot(db) == before


async def test_provider_view_shows_every_package_with_its_sale_state(client, factory, provider):
    event = await factory.event(provider)
    upcoming = await factory.package(provider, event["id"], opens_at=future(3), price=100)
    hidden = await factory.package(provider, event["id"], price=900)
    await client.patch(f"{EV}/{event['id']}/packages/{hidden['id']}", json={"is_active": False},
                       headers=provider.h)
    detail = await (await client.get(f"{EV}/{event['id']}", headers=provider.h)).json()
    states = {p["id"]: p["sale_state"] for p in detail["packages"]}
    assert states == {upcoming["id"]: "upcoming", hidden["id"]: "closed"}
    assert detail["status"] == "draft"


# --- sections and seats ----------------------------------------------------------------------
async def seated(factory, provider, price: int = 10_000):
    event = await factory.event(provider, requires_seating=True)
    package = await factory.package(provider, event["id"], price=price)
    return event, package


async def seat_rows(db, section_id: int) -> list[tuple]:
    return [tuple(r) for r in await db.fetch(
        'SELECT seat_number, "row", "column", price_modifier, status FROM seats '
        "WHERE section_id = $1 ORDER BY id", section_id)]


async def test_grid_section_letters_rows_and_prices_rows(client, factory, provider, db):
    event, package = await seated(factory, provider, price=10_000)
    section = await factory.section(provider, event["id"], package["id"], name="Stalls",
                                     numbering_type="grid", rows=2, seats_per_row=3,
                                     row_price_modifiers={"B": -2_500})
    assert (section["capacity"], section["row_count"], section["seat_numbering_type"]) == (6, 2, "grid")
    assert [(s["seat_number"], s["row"], s["column"], s["price"]) for s in section["seats"]] == [
        ("A1", "A", 1, 10_000), ("A2", "A", 2, 10_000), ("A3", "A", 3, 10_000),
        ("B1", "B", 1, 7_500), ("B2", "B", 2, 7_500), ("B3", "B", 3, 7_500)]
    assert await seat_rows(db, section["id"]) == [
        ("A1", "A", 1, 0, "available"), ("A2", "A", 2, 0, "available"),
        ("A3", "A", 3, 0, "available"), ("B1", "B", 1, -2_500, "available"),
        ("B2", "B", 2, -2_500, "available"), ("B3", "B", 3, -2_500, "available")]
    seat_map = await (await client.get(f"{EV}/{event['id']}/seating", headers=provider.h)).json()
    assert seat_map["sections"][0]["seats"] == section["seats"]


async def test_grid_rows_past_z_are_double_letters(factory, provider):
    event, package = await seated(factory, provider)
    section = await factory.section(provider, event["id"], package["id"], rows=28, seats_per_row=1)
    assert [s["seat_number"] for s in section["seats"]][24:] == ["Y1", "Z1", "AA1", "AB1"]


async def test_sequential_section_numbers_seats_across_rows(factory, provider):
    event, package = await seated(factory, provider, price=5_000)
    section = await factory.section(provider, event["id"], package["id"], numbering_type="sequential",
                                    rows=2, seats_per_row=3, row_price_modifiers={"A": 1_000})
    assert [(s["seat_number"], s["row"], s["price"]) for s in section["seats"]] == [
        ("1", "A", 6_000), ("2", "A", 6_000), ("3", "A", 6_000),
        ("4", "B", 5_000), ("5", "B", 5_000), ("6", "B", 5_000)]
    assert section["capacity"] == 6


async def test_custom_section_uses_the_given_labels(factory, provider, db):
    event, package = await seated(factory, provider, price=8_000)
    section = await factory.section(provider, event["id"], package["id"], numbering_type="custom",
                                    rows=0, seats_per_row=0,
                                    custom_seats=[
                                        {"seat_number": "Box 1", "row": "Box", "price_modifier": 4_000},
                                        {"seat_number": "Box 2", "row": "Box"},
                                        {"seat_number": "Rail-7"},
                                    ],
                                    row_price_modifiers={"Box": 1_000})
    assert [(s["seat_number"], s["row"], s["price"]) for s in section["seats"]] == [
        ("Box 1", "Box", 13_000), ("Box 2", "Box", 9_000), ("Rail-7", None, 8_000)]
    assert (section["capacity"], section["row_count"]) == (3, 1)
    assert await db.fetchval("SELECT count(*) FROM seats WHERE section_id = $1", section["id"]) == 3


async def test_seat_price_never_goes_below_zero(factory, provider):
    event, package = await seated(factory, provider, price=1_000)
    section = await factory.section(provider, event["id"], package["id"], rows=1, seats_per_row=1,
                                    row_price_modifiers={"A": -5_000})
    assert section["seats"][0]["price"] == 0


@pytest.mark.parametrize("body, status, field", [
    ({"numbering_type": "custom", "custom_seats": [{"seat_number": "7"}, {"seat_number": "7"}]},
     422, "custom_seats"),
    ({"rows": 0, "seats_per_row": 0}, 422, "rows"),
    ({"numbering_type": "custom", "custom_seats": []}, 422, "rows"),
])
async def test_bad_sections_create_nothing(client, factory, provider, db, body, status, field):
    event, package = await seated(factory, provider)
    before = await snapshot(db)
    resp = await client.post(f"{EV}/{event['id']}/sections",
                             json={"name": "Bad", "package_id": package["id"], **body}, headers=provider.h)
    assert field in (await error_of(resp, status))["fields"]
    assert await snapshot(db) == before


async def test_section_package_must_be_of_this_event(client, factory, provider, db):
    event, _ = await seated(factory, provider)
    _, foreign = await seated(factory, provider)
    before = await snapshot(db)
    resp = await client.post(f"{EV}/{event['id']}/sections", json={
        "name": "Wrong", "package_id": foreign["id"], "rows": 1, "seats_per_row": 1}, headers=provider.h)
    assert "package_id" in (await error_of(resp, 422))["fields"]
    assert await snapshot(db) == before


async def test_section_on_an_event_without_seating_is_refused(client, factory, provider, db):
    event = await factory.event(provider)
    package = await factory.package(provider, event["id"])
    before = await snapshot(db)
    resp = await client.post(f"{EV}/{event['id']}/sections", json={
        "name": "Pit", "package_id": package["id"], "rows": 1, "seats_per_row": 2}, headers=provider.h)
    await error_of(resp, 422, "not_seated")
    assert await snapshot(db) == before


async def test_duplicate_section_name_conflicts(client, factory, provider, db):
    event, package = await seated(factory, provider)
    await factory.section(provider, event["id"], package["id"], name="Balcony")
    before = await snapshot(db)
    resp = await client.post(f"{EV}/{event['id']}/sections", json={
        "name": "Balcony", "package_id": package["id"], "rows": 1, "seats_per_row": 1},
        headers=provider.h)
    assert "name" in (await error_of(resp, 409, "section_name_taken"))["fields"]
    assert await snapshot(db) == before


async def block(client, actor, event_id: int, seat_ids: list[int], blocked: bool = True):
    return await client.post(f"{EV}/{event_id}/seats/block",
                             json={"seat_ids": seat_ids, "blocked": blocked}, headers=actor.h)


async def statuses(db, ids: list[int]) -> list[str]:
    rows = await db.fetch("SELECT id, status FROM seats WHERE id = ANY($1::bigint[])", ids)
    found = {r["id"]: r["status"] for r in rows}
    return [found[i] for i in ids]


async def test_block_and_unblock_seats(client, factory, provider, db):
    event, package = await seated(factory, provider)
    section = await factory.section(provider, event["id"], package["id"])
    ids = [s["id"] for s in section["seats"]]
    resp = await block(client, provider, event["id"], [ids[3], ids[1]])
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["changed"] == sorted([ids[1], ids[3]])
    assert await statuses(db, ids[:4]) == ["available", "blocked", "available", "blocked"]
    # blocking again changes nothing; unblocking a mix only changes the blocked ones
    assert (await (await block(client, provider, event["id"], [ids[1]])).json())["changed"] == []
    resp = await block(client, provider, event["id"], [ids[0], ids[1], ids[3]], blocked=False)
    assert (await resp.json())["changed"] == [ids[1], ids[3]]
    assert await statuses(db, ids[:4]) == ["available"] * 4


async def test_blocked_seats_show_in_the_seat_map(client, factory, provider):
    event, package = await seated(factory, provider)
    section = await factory.section(provider, event["id"], package["id"], rows=1, seats_per_row=2)
    ids = [s["id"] for s in section["seats"]]
    await block(client, provider, event["id"], [ids[0]])
    seat_map = await (await client.get(f"{EV}/{event['id']}/seating", headers=provider.h)).json()
    assert [s["status"] for s in seat_map["sections"][0]["seats"]] == ["blocked", "available"]


@pytest.mark.parametrize("case", ["unknown", "other_event", "duplicate", "sold"])
async def test_bad_block_requests_change_nothing(client, factory, provider, db, case):
    event, package = await seated(factory, provider)
    section = await factory.section(provider, event["id"], package["id"])
    ids = [s["id"] for s in section["seats"]]
    if case == "unknown":
        seat_ids, status, code = [ids[0], 999_999], 404, "not_found"
    elif case == "other_event":
        sibling, sibling_package = await seated(factory, provider)
        foreign = await factory.section(provider, sibling["id"], sibling_package["id"])
        seat_ids, status, code = [ids[0], foreign["seats"][0]["id"]], 404, "not_found"
    elif case == "duplicate":
        seat_ids, status, code = [ids[0], ids[1], ids[0]], 422, "invalid"
    else:
        await db.execute("UPDATE seats SET status = 'sold' WHERE id = $1", ids[1])
        seat_ids, status, code = [ids[0], ids[1]], 409, "seat_unavailable"
    before = await snapshot(db)
    body = await error_of(await block(client, provider, event["id"], seat_ids), status, code)
    if case != "sold":
        assert "seat_ids" in body["fields"]
    assert await snapshot(db) == before


# --- who may do what -------------------------------------------------------------------------
async def foreign_requests(client, factory, owner) -> tuple[dict, list[tuple[str, str, Any]]]:
    """An event of `owner` with a package and seats, and one request per provider route on it."""
    event, package = await seated(factory, owner)
    section = await factory.section(owner, event["id"], package["id"])
    url = f"{EV}/{event['id']}"
    starts = future(90)
    return event, [
        ("GET", url, None),
        ("PATCH", url, {"title": "Hijacked"}),
        ("POST", f"{url}/publish", None),
        ("POST", f"{url}/cancel", None),
        ("POST", f"{url}/postpone", {"starts_at": starts.isoformat()}),
        ("POST", f"{url}/complete", None),
        ("POST", f"{url}/packages", {"name": "Mine now", "price": 0, "capacity": 5}),
        ("PATCH", f"{url}/packages/{package['id']}", {"price": 0}),
        ("POST", f"{url}/sections", {"name": "Extra", "package_id": package["id"], "rows": 1,
                                     "seats_per_row": 1}),
        ("GET", f"{url}/seating", None),
        ("POST", f"{url}/seats/block", {"seat_ids": [section["seats"][0]["id"]]}),
    ]


async def test_another_providers_event_is_off_limits(client, factory, provider, other, db):
    """Another provider's event answers exactly as a missing one does (404), so ids cannot be
    probed for existence."""
    event, requests = await foreign_requests(client, factory, provider)
    missing = await db.fetchval("SELECT max(id) + 1000 FROM events")
    before = await snapshot(db)
    for method, url, body in requests:
        kwargs = {"json": body} if body is not None else {}
        resp = await client.request(method, url, headers=other.h, **kwargs)
        err = await error_of(resp, 404, "not_found")
        assert "Hijacked" not in err["message"], (method, url)
        absent = await client.request(method, url.replace(f"/{event['id']}", f"/{missing}", 1),
                                      headers=other.h, **kwargs)
        assert absent.status == 404
        assert err == {**await absent.json(), "message": err["message"]}
        assert err["message"] == (await absent.json())["message"].replace(str(missing),
                                                                          str(event["id"]))
    assert await snapshot(db) == before


async def test_ownership_is_checked_before_the_input_rules(client, factory, provider, other, db):
    """Another provider's broken request is refused as not theirs (404), not judged (422)."""
    event, package = await seated(factory, provider)
    section = await factory.section(provider, event["id"], package["id"])
    url = f"{EV}/{event['id']}"
    seat = section["seats"][0]["id"]
    before = await snapshot(db)
    for method, path, body in [
        ("PATCH", url, {"ends_at": future(-400).isoformat()}),
        ("POST", f"{url}/packages", {"name": "x", "price": 1, "capacity": 1, "opens_at": future(5).isoformat(),
                                     "closes_at": future(4).isoformat()}),
        ("POST", f"{url}/packages", {"name": "x", "price": 1, "capacity": 1, "min_per_order": 5,
                                     "max_per_order": 2}),
        ("POST", f"{url}/sections", {"name": "x", "package_id": package["id"]}),
        ("POST", f"{url}/seats/block", {"seat_ids": [seat, seat]}),
    ]:
        resp = await client.request(method, path, json=body, headers=other.h)
        await error_of(resp, 404, "not_found")
    assert await snapshot(db) == before


async def test_buyers_get_403_on_provider_routes(client, factory, provider, db):
    buyer = await factory.user("buyer")
    _, requests = await foreign_requests(client, factory, provider)
    starts = future(5)
    requests += [("GET", EV, None), ("POST", EV, {"title": "Buyer event", "starts_at": starts.isoformat(),
                                                 "ends_at": (starts + timedelta(hours=1)).isoformat()})]
    before = await snapshot(db)
    for method, url, body in requests:
        kwargs = {"json": body} if body is not None else {}
        resp = await client.request(method, url, headers=buyer.h, **kwargs)
        assert (await error_of(resp, 403, "forbidden"))["fields"] == {}, (method, url)
    assert await snapshot(db) == before


async def test_anonymous_gets_401_on_provider_routes(client, factory, provider, db):
    _, requests = await foreign_requests(client, factory, provider)
    requests.append(("GET", EV, None))
    before = await snapshot(db)
    for method, url, body in requests:
        kwargs = {"json": body} if body is not None else {}
        resp = await client.request(method, url, **kwargs)
        await error_of(resp, 401, "unauthenticated")
        assert resp.headers.get("WWW-Authenticate") == "Bearer"
    assert await snapshot(db) == before


async def test_revoked_or_bogus_token_gets_401(client, provider):
    resp = await client.get(EV, headers={"Authorization": "Bearer kw_not-a-real-token"})
    await error_of(resp, 401, "unauthenticated")
    resp = await client.get(EV, headers={"Authorization": "Basic abc"})
    await error_of(resp, 401, "unauthenticated")


@pytest.mark.parametrize("method, suffix, body", [
    ("GET", "", None), ("PATCH", "", {"title": "x"}), ("POST", "/publish", None),
    ("POST", "/packages", {"name": "n", "price": 1, "capacity": 1}),
])
async def test_unknown_event_is_404(client, provider, method, suffix, body):
    kwargs = {"json": body} if body is not None else {}
    resp = await client.request(method, f"{EV}/424242{suffix}", headers=provider.h, **kwargs)
    await error_of(resp, 404, "not_found")
