"""A provider's standing decides what it may change: verified everything, pending drafts only,
suspended or rejected nothing (their live events keep selling; admins may still act on them)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from engine.catalog_rules import check_standing
from engine.errors import Forbidden
from tests.factories import future
from tests.test_provider_api import EV, error_of, snapshot


async def set_standing(client, admin, provider, status: str) -> None:
    url = f"/api/admin/providers/{provider.user['provider_id']}/verification"
    resp = await client.post(url, json={"status": status}, headers=admin.h)
    assert resp.status == 204, await resp.text()


def writes(event: dict[str, Any], package: dict[str, Any], seat_id: int | None = None
           ) -> list[tuple[str, str, Any]]:
    """One request per provider write route on `event` (the lifecycle moves included)."""
    url = f"{EV}/{event['id']}"
    starts = future(60)
    requests = [
        ("PATCH", url, {"title": "Changed"}),
        ("POST", f"{url}/packages", {"name": "Extra tier", "price": 1, "capacity": 5}),
        ("PATCH", f"{url}/packages/{package['id']}", {"price": 1}),
        ("POST", f"{url}/publish", None),
        ("POST", f"{url}/postpone", {"starts_at": starts.isoformat()}),
        ("POST", f"{url}/complete", None),
        ("POST", f"{url}/cancel", None),
    ]
    if seat_id is not None:
        requests += [
            ("POST", f"{url}/sections", {"name": "More", "package_id": package["id"], "rows": 1,
                                         "seats_per_row": 1}),
            ("POST", f"{url}/seats/block", {"seat_ids": [seat_id]}),
        ]
    return requests


def new_event_body() -> dict[str, str]:
    starts = future(20)
    return {"title": "Another", "starts_at": starts.isoformat(),
            "ends_at": (starts + timedelta(hours=2)).isoformat()}


async def seated_draft(factory, provider) -> tuple[dict, dict, int]:
    event = await factory.event(provider, requires_seating=True)
    package = await factory.package(provider, event["id"], capacity=10)
    section = await factory.section(provider, event["id"], package["id"])
    return event, package, section["seats"][0]["id"]


@pytest.mark.parametrize("standing", ["suspended", "rejected"])
async def test_a_suspended_provider_changes_nothing_but_its_live_event_keeps_selling(
        client, factory, db, standing):
    provider, admin, buyer = await factory.user("provider"), await factory.user("admin"), await factory.user()
    live = await factory.event(provider)
    live_package = await factory.package(provider, live["id"], capacity=10)
    assert (await client.post(f"{EV}/{live['id']}/publish", headers=provider.h)).status == 200
    draft, draft_package, seat = await seated_draft(factory, provider)
    hold_url = f"/api/events/{live['id']}/holds"
    item = {"items": [{"package_id": live_package["id"], "quantity": 2}]}
    held = await client.post(hold_url, json=item, headers=buyer.h)
    assert held.status == 201, await held.text()

    await set_standing(client, admin, provider, standing)
    before = await snapshot(db)
    requests = writes(live, live_package) + writes(draft, draft_package, seat) + [
        ("POST", EV, new_event_body())]
    for method, url, body in requests:
        resp = await client.request(method, url, json=body, headers=provider.h)
        err = await error_of(resp, 403, f"provider_{standing}")
        assert standing in err["message"], (method, url)
    assert await snapshot(db) == before

    # reads still work, and buyers are not hurt: the hold stands and new holds are taken
    assert (await client.get(f"{EV}/{live['id']}", headers=provider.h)).status == 200
    assert (await client.get(EV, headers=provider.h)).status == 200
    hold = await held.json()
    assert (await client.get(f"/api/holds/{hold['id']}", headers=buyer.h)).status == 200
    other = await factory.user()
    assert (await client.post(hold_url, json=item, headers=other.h)).status == 201

    # an admin can still postpone and cancel the live event
    resp = await client.post(f"{EV}/{live['id']}/postpone", json={}, headers=admin.h)
    assert resp.status == 200 and (await resp.json())["status"] == "postponed"
    resp = await client.post(f"{EV}/{live['id']}/cancel", headers=admin.h)
    assert resp.status == 200 and (await resp.json())["status"] == "cancelled"


async def test_suspension_takes_effect_at_once_and_lifting_it_restores_writes(client, factory):
    provider, admin = await factory.user("provider"), await factory.user("admin")
    event = await factory.event(provider)
    url = f"{EV}/{event['id']}"
    assert (await client.patch(url, json={"title": "One"}, headers=provider.h)).status == 200
    await set_standing(client, admin, provider, "suspended")
    await error_of(await client.patch(url, json={"title": "Two"}, headers=provider.h), 403,
                   "provider_suspended")
    await set_standing(client, admin, provider, "verified")
    assert (await client.patch(url, json={"title": "Three"}, headers=provider.h)).status == 200


async def test_a_pending_provider_works_on_drafts_only(client, factory, db):
    pending = await factory.user("provider", verified=False)
    assert pending.user["provider_status"] == "pending"
    # everything on a draft works: create, edit, packages, sections, seat blocks
    event, package, seat = await seated_draft(factory, pending)
    url = f"{EV}/{event['id']}"
    for method, path, body in [
        ("PATCH", url, {"title": "Renamed draft"}),
        ("POST", f"{url}/packages", {"name": "Second", "price": 1, "capacity": 5}),
        ("PATCH", f"{url}/packages/{package['id']}", {"price": 2}),
        ("POST", f"{url}/sections", {"name": "More", "package_id": package["id"], "rows": 1,
                                     "seats_per_row": 1}),
        ("POST", f"{url}/seats/block", {"seat_ids": [seat]}),
    ]:
        resp = await client.request(method, path, json=body, headers=pending.h)
        assert resp.status in (200, 201), (method, path, await resp.text())
    # but not publishing it
    before = await snapshot(db)
    await error_of(await client.post(f"{url}/publish", headers=pending.h), 403,
                   "provider_not_verified")
    assert await snapshot(db) == before
    # a draft may be given up
    other = await factory.event(pending)
    resp = await client.post(f"{EV}/{other['id']}/cancel", headers=pending.h)
    assert resp.status == 200, await resp.text()


async def test_a_provider_sent_back_to_pending_cannot_touch_its_published_event(client, factory, db):
    provider, admin = await factory.user("provider"), await factory.user("admin")
    live = await factory.event(provider)
    package = await factory.package(provider, live["id"])
    assert (await client.post(f"{EV}/{live['id']}/publish", headers=provider.h)).status == 200
    await set_standing(client, admin, provider, "pending")
    before = await snapshot(db)
    for method, url, body in writes(live, package):
        resp = await client.request(method, url, json=body, headers=provider.h)
        await error_of(resp, 403, "provider_not_verified")
    assert await snapshot(db) == before
    resp = await client.post(EV, json=new_event_body(), headers=provider.h)  # drafts still work
    assert resp.status == 201, await resp.text()


async def test_standing_is_checked_after_ownership(client, factory):
    """A suspended provider probing another provider's event learns nothing: 404, as for any."""
    owner, prober, admin = (await factory.user("provider"), await factory.user("provider"),
                            await factory.user("admin"))
    event = await factory.event(owner)
    await set_standing(client, admin, prober, "suspended")
    resp = await client.patch(f"{EV}/{event['id']}", json={"title": "x"}, headers=prober.h)
    await error_of(resp, 404, "not_found")


@pytest.mark.parametrize("standing, event_status, target, allowed", [
    ("verified", "published", None, True),
    ("verified", "draft", "published", True),
    ("pending", None, None, True),
    ("pending", "draft", None, True),
    ("pending", "draft", "cancelled", True),
    ("pending", "draft", "published", False),
    ("pending", "published", None, False),
    ("pending", "postponed", "cancelled", False),
    ("suspended", None, None, False),
    ("suspended", "draft", None, False),
    ("rejected", "draft", None, False),
    ("unknown", "draft", None, False),
])
def test_check_standing(standing, event_status, target, allowed):
    if allowed:
        check_standing(standing, event_status, target)
    else:
        with pytest.raises(Forbidden):
            check_standing(standing, event_status, target)
