"""Building catalog objects in memory for engine tests, and checking inventory invariants."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import msgspec

from engine import catalog_types as t
from engine.audit import audit
from engine.inventory import Inventory

_ids = itertools.count(1000)
NOW = datetime.now(UTC)


def event(event_id: int | None = None, status: str = "published", seated: bool = False,
          buyer_cap: int = 1000, guests: bool = True) -> t.Event:
    return t.Event(
        id=event_id or next(_ids), provider_id=1, slug="e", title="E", description="", category="x",
        venue="", address="", city="", latitude=None, longitude=None, starts_at=NOW + timedelta(days=9),
        ends_at=NOW + timedelta(days=10), timezone="UTC", cover_image_url=None, status=status,
        requires_seating=seated, allow_guest_checkout=guests, uses_waiting_room=False, currency="MWK",
        max_tickets_per_buyer=buyer_cap, service_fee=0, tickets_sold=0, published_at=NOW, created_at=NOW, updated_at=NOW)


def package(event_id: int, capacity: int = 100, price: int = 1000, **kw) -> t.Package:
    fields = {"id": next(_ids), "event_id": event_id, "name": "P", "description": "",
              "price": price, "capacity": capacity, "min_per_order": 1, "max_per_order": 10,
              "per_buyer_limit": None, "opens_at": None, "closes_at": None, "sort_order": 0,
              "is_active": True}
    fields.update(kw)
    return t.Package(**fields)


def seat_map(event_id: int, package_id: int, count: int, price: int = 1000,
             blocked: tuple[int, ...] = ()) -> t.SeatMap:
    seats = [t.Seat(id=next(_ids), seat_number=str(i), row="A", column=i,
                    status="blocked" if i in blocked else "available", price=price)
             for i in range(count)]
    return t.SeatMap(event_id=event_id, currency="MWK", sections=[t.Section(
        id=next(_ids), name="S", package_id=package_id, capacity=count, row_count=1,
        seat_numbering_type="grid", sort_order=0, seats=seats)])


def with_blocked(smap: t.SeatMap, blocked: set[int]) -> t.SeatMap:
    """The same seat map with exactly the seats `blocked` (by id) blocked, as the catalog would
    have it after a provider blocks or unblocks seats."""
    section = smap.sections[0]
    seats = [msgspec.structs.replace(s, status="blocked" if s.id in blocked else "available")
             for s in section.seats]
    return msgspec.structs.replace(smap, sections=[msgspec.structs.replace(section, seats=seats)])


async def check_invariants(inv: Inventory, event_id: int) -> None:
    """The books balance (engine.audit): assert there is nothing to report."""
    assert await audit(inv, event_id) == []


async def lapse(inv: Inventory, event_id: int, hold_id: str) -> None:
    """Let a hold's time run out now (as the clock would) and sweep it: its stock goes back."""
    holds = inv.keys.event(event_id, "holds")
    raw = msgspec.json.decode(await inv.client.hget(holds, hold_id))
    raw["expires"] = raw["created"]
    await inv.client.hset(holds, hold_id, msgspec.json.encode(raw))
    await inv.client.zadd(inv.keys.event(event_id, "expiry"), {hold_id: 0})
    await inv.expire(event_id)
