"""Best available: the server picks N seats side by side, atomically, by the written ranking rule
(scripts/lua/best_available.lua): nearest section, front row, middle of the row; never split."""

from __future__ import annotations

import asyncio

import pytest

from engine.audit import audit
from engine.inventory import HoldRefused
from storefront.appkeys import INVENTORY

EV = "/api/provider/events"


async def _venue(client, factory, sections=(("Front", 3, 6, {}), ("Back", 4, 8, {}))):
    """A seated event; `sections` are (name, rows, seats per row, row price modifiers)."""
    provider = await factory.user("provider")
    event = await factory.event(provider, requires_seating=True, max_tickets_per_buyer=100)
    pkg = await factory.package(provider, event["id"], price=10_000, max_per_order=20)
    made = []
    for order, (name, rows, per_row, modifiers) in enumerate(sections):
        made.append(await factory.section(provider, event["id"], pkg["id"], name=name, rows=rows,
                                          seats_per_row=per_row, row_price_modifiers=modifiers,
                                          sort_order=order))
    assert (await client.post(f"{EV}/{event['id']}/publish", headers=provider.h)).status == 200
    return event, pkg, made


def _numbers(section, hold) -> list[str]:
    by_id = {s["id"]: s["seat_number"] for s in section["seats"]}
    return sorted((by_id[s.seat_id] for s in hold.seats), key=lambda n: (n[0], int(n[1:])))


async def test_the_best_run_is_the_front_row_middle(client, factory):
    event, _, (front, back) = await _venue(client, factory)
    inventory = client.server.app[INVENTORY]
    hold = await inventory.best_available(event["id"], "u:1", 2)
    assert _numbers(front, hold) == ["A3", "A4"]  # row A of 6: the middle pair
    hold = await inventory.best_available(event["id"], "u:2", 4)
    # A has 1-2 and 5-6 left: no 4 together, so row B, middle
    assert _numbers(front, hold) == ["B2", "B3", "B4", "B5"]
    hold = await inventory.best_available(event["id"], "u:3", 3, section_id=back["id"])
    assert _numbers(back, hold) == ["A3", "A4", "A5"] or _numbers(back, hold) == ["A4", "A5", "A6"]
    assert await audit(inventory, event["id"]) == []


async def test_a_group_is_never_split(client, factory):
    event, _, (front,) = await _venue(client, factory, sections=(("Front", 2, 4, {}),))
    inventory = client.server.app[INVENTORY]
    ids = {s["seat_number"]: s["id"] for s in front["seats"]}
    # leave two free seats in each row, apart: A1, A4, B2, B4 free
    await inventory.hold(event["id"], "u:taker", seat_ids=[ids["A2"], ids["A3"], ids["B1"], ids["B3"]])
    with pytest.raises(HoldRefused) as refused:
        await inventory.best_available(event["id"], "u:group", 2)
    assert refused.value.reason == "no_adjacent_run"
    assert (await inventory.availability(event["id"])).packages[front["package_id"]].held == 4
    hold = await inventory.best_available(event["id"], "u:single", 1)
    assert len(hold.seats) == 1


async def test_a_price_band_picks_only_seats_inside_it(client, factory):
    event, _pkg, (front,) = await _venue(client, factory, sections=(("Front", 3, 4, {"A": 5_000}),))
    inventory = client.server.app[INVENTORY]
    hold = await inventory.best_available(event["id"], "u:1", 2, price_max=10_000)
    assert _numbers(front, hold) == ["B2", "B3"] and hold.total == 20_000
    hold = await inventory.best_available(event["id"], "u:2", 2, price_min=15_000)
    assert _numbers(front, hold) == ["A2", "A3"] and hold.total == 30_000


async def test_1000_groups_racing_never_share_a_seat(client, factory, db):
    event, _, sections = await _venue(client, factory, sections=(
        ("Front", 10, 20, {}), ("Back", 10, 20, {})))
    inventory = client.server.app[INVENTORY]
    sizes = [1 + i % 4 for i in range(1000)]
    results = await asyncio.gather(*[inventory.best_available(event["id"], f"u:{i}", n)
                                     for i, n in enumerate(sizes)], return_exceptions=True)
    won = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert all(isinstance(r, HoldRefused) and r.reason == "no_adjacent_run" for r in refused)
    seats = [s.seat_id for h in won for s in h.seats]
    assert len(seats) == len(set(seats)) <= 400
    by_id = {s["id"]: (s["row"], s["column"]) for sec in sections for s in sec["seats"]}
    for hold in won:  # every group sits together: one row, neighbouring columns
        places = sorted(by_id[s.seat_id] for s in hold.seats)
        assert len({row for row, _ in places}) == 1
        columns = [c for _, c in places]
        assert columns == list(range(columns[0], columns[0] + len(columns)))
    assert len(seats) >= 360  # the venue fills up: only gaps too small for a group are left
    assert await audit(inventory, event["id"], db) == []


async def test_best_available_over_http(client, factory):
    event, _, (_front, _) = await _venue(client, factory)
    buyer = await factory.user()
    url = f"/api/events/{event['id']}/best-available"
    headers = {**buyer.h, "Idempotency-Key": "best-1"}
    first, again = [await client.post(url, headers=headers, json={"quantity": 3}) for _ in range(2)]
    assert first.status == again.status == 201
    assert (await first.json())["id"] == (await again.json())["id"]
    assert len((await first.json())["seats"]) == 3
    for body, status, error in [({"quantity": 0}, 422, "invalid"), ({"quantity": 3, "section_id": 10**9}, 422,
                                 "unknown_section"),
                                ({"quantity": 2, "price_min": 5, "price_max": 1}, 422, "invalid")]:
        other = await factory.user()
        resp = await client.post(url, headers=other.h, json=body)
        assert resp.status == status and (await resp.json())["error"] == error, body
