"""Admin JSON API: every provider's events, any status, with the public search's filters."""

from __future__ import annotations

import pytest

from tests.factories import future

EV = "/api/provider/events"


@pytest.fixture
async def world(client, factory):
    a, b = await factory.user("provider"), await factory.user("provider")
    events = {
        "draft": await factory.event(a, title="Draft Jazz", starts_at=future(5)),
        "published": await factory.published_event(b, title="Live Jazz", starts_at=future(6)),
        "cancelled": await factory.published_event(a, title="Cancelled Rock", starts_at=future(7)),
        "postponed": await factory.published_event(b, title="Later Rock", starts_at=future(8)),
    }
    for name, action in (("cancelled", "cancel"), ("postponed", "postpone")):
        owner = a if name == "cancelled" else b
        resp = await client.post(f"{EV}/{events[name]['id']}/{action}", json={}, headers=owner.h)
        assert resp.status == 200, await resp.text()
    return {"admin": await factory.user("admin"), "buyer": await factory.user("buyer"),
            "provider": a, "events": events}


async def titles(client, actor, **params) -> list[str]:
    resp = await client.get("/api/admin/events", params=params, headers=actor.h)
    body = await resp.json()
    assert resp.status == 200, body
    return [e["title"] for e in body["items"]]


async def test_admins_see_every_provider_s_events_in_every_status(client, world):
    assert await titles(client, world["admin"]) == ["Draft Jazz", "Live Jazz", "Cancelled Rock",
                                                    "Later Rock"]
    resp = await client.get("/api/events")
    assert [e["title"] for e in (await resp.json())["items"]] == ["Live Jazz", "Later Rock"]


@pytest.mark.parametrize("params, expected", [
    ({"status": "draft"}, ["Draft Jazz"]),
    ({"status": "cancelled"}, ["Cancelled Rock"]),
    ({"q": "jazz"}, ["Draft Jazz", "Live Jazz"]),
    ({"q": "rock", "sort": "date", "order": "desc"}, ["Later Rock", "Cancelled Rock"]),
    ({"per_page": "1", "page": "2"}, ["Live Jazz"]),
])
async def test_the_public_filters_apply(client, world, params, expected):
    assert await titles(client, world["admin"], **params) == expected


@pytest.mark.parametrize("who, status", [(None, 401), ("buyer", 403), ("provider", 403)])
async def test_only_admins(client, world, who, status):
    headers = world[who].h if who else {}
    resp = await client.get("/api/admin/events", headers=headers)
    assert resp.status == status
    assert set(await resp.json()) == {"error", "message", "fields"}


@pytest.mark.parametrize("params, field", [({"status": "gone"}, "status"), ({"page": "0"}, "page"),
                                           ({"q": "\u0000"}, "q")])
async def test_bad_filters_are_422(client, world, params, field):
    resp = await client.get("/api/admin/events", params=params, headers=world["admin"].h)
    body = await resp.json()
    assert resp.status == 422 and field in body["fields"], body


async def test_the_provider_route_points_admins_to_it(client, world):
    resp = await client.get(EV, headers=world["admin"].h)
    body = await resp.json()
    assert resp.status == 403 and "GET /api/admin/events" in body["message"]
