"""Building catalog objects in memory for engine tests, and checking inventory invariants."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from engine import catalog_types as t
from engine.inventory import Inventory

_ids = itertools.count(1000)
NOW = datetime.now(UTC)


def event(event_id: int | None = None, status: str = "published", seated: bool = False) -> t.Event:
    return t.Event(
        id=event_id or next(_ids), provider_id=1, slug="e", title="E", description="", category="x",
        venue="", address="", city="", latitude=None, longitude=None, starts_at=NOW + timedelta(days=9),
        ends_at=NOW + timedelta(days=10), timezone="UTC", cover_image_url=None, status=status,
        requires_seating=seated, allow_guest_checkout=True, uses_waiting_room=False, currency="MWK",
        tickets_sold=0, published_at=NOW, created_at=NOW, updated_at=NOW)


def package(event_id: int, capacity: int = 100, price: int = 1000, **kw) -> t.Package:
    fields = dict(id=next(_ids), event_id=event_id, name="P", description="", price=price,
                  capacity=capacity, min_per_order=1, max_per_order=10, per_buyer_limit=None,
                  opens_at=None, closes_at=None, sort_order=0, is_active=True)
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


async def check_invariants(inv: Inventory, event_id: int) -> None:
    """available + held + sold == capacity for every package, nothing negative, every seat in
    one state that agrees with the holds and sales, buyer counts equal their holds + sales."""
    import msgspec

    a = await inv.availability(event_id, with_seats=True)
    for p in a.packages.values():
        assert min(p.available, p.held, p.sold, p.capacity) >= 0, p
        assert p.available + p.held + p.sold == p.capacity, p
    keys = dict(zip(("meta", "pkgs", "stock", "seats", "seatinfo", "holds", "expiry", "buyers",
                     "sales"), inv.event_keys(event_id)))
    r = inv.client
    holds = {k.decode(): msgspec.json.decode(v) for k, v in (await r.hgetall(keys["holds"])).items()}
    sales = {k.decode(): msgspec.json.decode(v) for k, v in (await r.hgetall(keys["sales"])).items()
             if not k.startswith(b"hold:")}
    seats = {k.decode(): v.decode() for k, v in (await r.hgetall(keys["seats"])).items()}
    held_by: dict[str, str] = {}
    for hid, h in holds.items():
        for s in (h.get("seats") or []):
            assert str(s[0]) not in held_by, f"seat {s[0]} in two holds"
            held_by[str(s[0])] = hid
            assert seats[str(s[0])] == f"h:{hid}"
    for order, sale in sales.items():
        if sale["state"] == "sold":
            for s in (sale.get("seats") or []):
                assert seats[str(s[0])] == f"s:{order}"
    assert sum(1 for v in seats.values() if v.startswith("h:")) == len(held_by)
    per_pkg_held: dict[int, int] = {}
    per_buyer: dict[str, int] = {}
    for h in holds.values():
        for pid, q in h["lines"]:
            per_pkg_held[pid] = per_pkg_held.get(pid, 0) + q
            per_buyer[f"{h['buyer']}|{pid}"] = per_buyer.get(f"{h['buyer']}|{pid}", 0) + q
    per_pkg_sold: dict[int, int] = {}
    for sale in sales.values():
        if sale["state"] == "sold":
            for pid, q in sale["lines"]:
                per_pkg_sold[pid] = per_pkg_sold.get(pid, 0) + q
                per_buyer[f"{sale['buyer']}|{pid}"] = per_buyer.get(f"{sale['buyer']}|{pid}", 0) + q
    for pid, p in a.packages.items():
        assert p.held == per_pkg_held.get(pid, 0), (pid, p)
        assert p.sold == per_pkg_sold.get(pid, 0), (pid, p)
    buyers = {k.decode(): int(v) for k, v in (await r.hgetall(keys["buyers"])).items()}
    assert buyers == {k: v for k, v in per_buyer.items() if v}
