"""Inventory: stock and seats of events on sale, held and sold only through the Lua scripts.

The interface is small: `load`, `hold`, `release`, `expire`, `confirm`, `unsell`, `block_seats`,
`availability`. Results are typed; a refusal raises `HoldRefused` with a typed reason. No Redis
detail leaks out. Stock counters obey `available + held + sold == capacity` per package; a seat is
in exactly one state: available, blocked, held by one hold, or sold to one order.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Literal

import msgspec
import redis.asyncio as redis

from engine import catalog_types as t
from engine.errors import Conflict, NotFound
from engine.keys import Keys
from engine.lua import Script, ScriptRunner, load_script

Reason = Literal[
    "not_loaded", "not_on_sale", "unknown_package", "unknown_seat", "seat_required",
    "seat_unavailable", "empty", "sale_not_open", "sale_closed", "below_minimum", "above_maximum",
    "limit_exceeded", "sold_out", "not_enough", "hold_id_taken",
    # confirm only
    "stock_gone", "refunded", "hold_already_sold", "not_owner",
]
EVENT_KEYS = ("meta", "pkgs", "stock", "seats", "seatinfo", "holds", "expiry", "buyers", "sales",
              "orders")
SCRIPTS = ("load_stock", "hold", "release", "expire", "confirm", "unsell", "block_seats",
           "availability")
STATUS_FOR = {"published": "on_sale", "postponed": "paused", "cancelled": "closed",
              "completed": "closed", "draft": "closed"}
LAZY_EXPIRE = 20  # due holds a hold call returns first
ORDERS_STREAM_MAXLEN = 1_000_000


class HoldRefused(Exception):
    """A hold (or confirm) that could not be made; `reason` says why, `detail` the specifics."""

    def __init__(self, reason: Reason, detail: dict):
        self.reason: Reason = reason
        self.detail = detail
        super().__init__(_describe(reason, detail))


def _describe(reason: str, d: dict) -> str:
    pkg = f"package {d['package_id']}" if "package_id" in d else "this selection"
    return {
        "not_loaded": "this event is not on sale",
        "not_on_sale": f"this event is not on sale ({d.get('status', 'closed')})",
        "unknown_package": f"{pkg} is not part of this event",
        "unknown_seat": f"seats {d.get('seat_ids')} are not part of this event",
        "seat_required": f"{pkg} is seated: choose seats instead of a quantity",
        "seat_unavailable": f"seats {d.get('seat_ids')} are no longer available",
        "empty": "choose at least one ticket or seat",
        "sale_not_open": f"sales for {pkg} have not opened yet",
        "sale_closed": f"sales for {pkg} have closed",
        "below_minimum": f"{pkg} sells at least {d.get('minimum')} per order",
        "above_maximum": f"{pkg} sells at most {d.get('maximum')} per order",
        "limit_exceeded": f"{pkg} allows {d.get('limit')} per buyer; you already have {d.get('already')}",
        "sold_out": f"{pkg} is sold out",
        "not_enough": f"only {d.get('available')} left in {pkg}",
        "hold_id_taken": "that hold id belongs to another buyer",
        "stock_gone": "the hold expired and its tickets were sold to someone else",
        "refunded": f"order {d.get('order')} was refunded; it cannot be confirmed again",
        "hold_already_sold": f"this hold was already sold as order {d.get('order')}",
    }.get(reason, reason)


# --- results --------------------------------------------------------------------------------
class HoldLine(msgspec.Struct, kw_only=True):
    package_id: int
    quantity: int
    unit_price: int


class HoldSeat(msgspec.Struct, kw_only=True):
    seat_id: int
    package_id: int
    price: int


class _Line(msgspec.Struct, array_like=True):  # as the scripts store it: [package, qty, price]
    package_id: int
    quantity: int
    unit_price: int

    def public(self) -> HoldLine:
        return HoldLine(package_id=self.package_id, quantity=self.quantity, unit_price=self.unit_price)


class _Seat(msgspec.Struct, array_like=True):  # [seat, package, price]
    seat_id: int
    package_id: int
    price: int

    def public(self) -> HoldSeat:
        return HoldSeat(seat_id=self.seat_id, package_id=self.package_id, price=self.price)


class Hold(msgspec.Struct, kw_only=True):
    id: str
    event_id: int
    buyer: str
    created_at: datetime
    expires_at: datetime
    items: list[HoldLine]
    seats: list[HoldSeat]
    total: int


class Sale(msgspec.Struct, kw_only=True):
    order_number: str
    event_id: int
    hold_id: str
    buyer: str
    items: list[HoldLine]
    seats: list[HoldSeat]
    retaken: bool = False
    replay: bool = False


class PackageStock(msgspec.Struct, kw_only=True):
    package_id: int
    capacity: int
    available: int
    held: int
    sold: int


class Availability(msgspec.Struct, kw_only=True):
    event_id: int
    status: str | None  # on_sale | paused | closed; None when not loaded
    packages: dict[int, PackageStock]
    seats: dict[int, str] = {}  # seat id -> available | blocked | held | sold


class _RawHold(msgspec.Struct):
    id: str
    buyer: str
    created: int = 0
    expires: int = 0
    lines: list[tuple[int, int]] = []
    ga: list[_Line] = []
    seats: list[_Seat] = []


class _RawSale(msgspec.Struct):
    order: str
    hold: str
    buyer: str
    lines: list[tuple[int, int]] = []
    ga: list[_Line] = []
    seats: list[_Seat] = []


def _ms(dt: datetime | None) -> int:
    return int(dt.timestamp() * 1000) if dt else 0


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _lists(value):  # cjson encodes an empty Lua table as {}
    return [] if value == {} else value


def _decode(raw: bytes) -> dict:
    data = msgspec.json.decode(raw)
    for section in ("hold", "sale"):
        if isinstance(data.get(section), dict):
            for key in ("lines", "ga", "seats"):
                data[section][key] = _lists(data[section].get(key, []))
    for key in ("seat_ids", "changed"):
        if key in data:
            data[key] = _lists(data[key])
    return data


SEAT_STATE = {"a": "available", "b": "blocked", "h": "held", "s": "sold"}


class Inventory:
    """The on-sale state of every event, in Redis."""

    def __init__(self, client: redis.Redis, keys: Keys, hold_ttl_seconds: int = 900,
                 runner: ScriptRunner | None = None):
        self.client = client
        self.keys = keys
        self.hold_ttl_ms = hold_ttl_seconds * 1000
        self.runner = runner or ScriptRunner(client)
        self.scripts: dict[str, Script] = {name: load_script(name) for name in SCRIPTS}
        self._event_keys: dict[int, tuple[str, ...]] = {}

    def event_keys(self, event_id: int) -> tuple[str, ...]:
        keys = self._event_keys.get(event_id)
        if keys is None:
            if len(self._event_keys) > 10_000:
                self._event_keys.clear()
            keys = self._event_keys[event_id] = tuple(self.keys.event(event_id, n) for n in EVENT_KEYS)
        return keys

    async def _run(self, name: str, event_id: int, *args) -> dict:
        raw = await self.runner.run(self.scripts[name], self.event_keys(event_id), args)
        return _decode(raw)

    # --- loading ------------------------------------------------------------------------------
    async def load(self, event: t.Event, packages: list[t.Package], seat_map: t.SeatMap | None,
                   sold: dict[int, int] | None = None) -> int:
        """Load or refresh an event's stock; returns the number of seats added.

        Raises Conflict when a package's capacity is below what is already held + sold."""
        seats = [s for section in (seat_map.sections if seat_map else []) for s in section.seats]
        seat_package = {s.id: section.package_id for section in (seat_map.sections if seat_map else [])
                        for s in section.seats}
        seated = {p for p in seat_package.values() if p is not None}
        payload = {
            "status": STATUS_FOR[event.status], "currency": event.currency,
            "packages": [{
                "id": p.id, "capacity": p.capacity, "sold": (sold or {}).get(p.id, 0),
                "price": p.price, "min": p.min_per_order, "max": p.max_per_order,
                "limit": p.per_buyer_limit or 0, "opens": _ms(p.opens_at), "closes": _ms(p.closes_at),
                "active": 1 if p.is_active else 0, "seated": 1 if p.id in seated else 0,
            } for p in packages],
            "seats": [{"id": s.id, "p": seat_package[s.id], "price": s.price,
                       "state": "available" if s.status == "reserved" else s.status}
                      for s in seats if seat_package[s.id] is not None],
        }
        result = await self._run("load_stock", event.id, msgspec.json.encode(payload))
        if not result["ok"] and result["reason"] == "package_sold_by_quantity":
            raise Conflict(f"package {result['package_id']} already has {result['committed']} tickets "
                           "held or sold by quantity; give the seats a new package",
                           code="package_sold_by_quantity", fields={"package_id": "sold by quantity"})
        if not result["ok"]:
            raise Conflict(f"capacity of package {result['package_id']} cannot go below the "
                           f"{result['committed']} tickets already held or sold",
                           code="capacity_below_committed",
                           fields={"capacity": f"at least {result['committed']}"})
        if event.status in ("published", "postponed"):
            await self.client.sadd(self.keys.events_on_sale(), event.id)
        else:
            await self.client.srem(self.keys.events_on_sale(), event.id)
        return result["seats_added"]

    # --- holds --------------------------------------------------------------------------------
    async def hold(self, event_id: int, buyer: str, items: dict[int, int] | None = None,
                   seat_ids: list[int] | None = None, *, hold_id: str | None = None,
                   ttl_seconds: int | None = None) -> Hold:
        """Hold `items` (package id -> quantity) and `seat_ids` for `buyer`, all or nothing."""
        hold_id = hold_id or new_hold_id(event_id)
        request = {"ga": [[p, q] for p, q in (items or {}).items()], "seats": list(seat_ids or [])}
        ttl = ttl_seconds * 1000 if ttl_seconds else self.hold_ttl_ms
        result = await self._run("hold", event_id, hold_id, buyer, ttl,
                                 msgspec.json.encode(request), LAZY_EXPIRE)
        if not result["ok"]:
            raise HoldRefused(result.pop("reason"), {k: v for k, v in result.items() if k != "ok"})
        return _hold(event_id, msgspec.convert(result["hold"], _RawHold))

    async def get_hold(self, event_id: int, hold_id: str) -> Hold | None:
        raw = await self.client.hget(self.keys.event(event_id, "holds"), hold_id)
        if raw is None:
            return None
        hold = _hold(event_id, msgspec.convert(_decode(b'{"hold":' + raw + b"}")["hold"], _RawHold))
        return hold if hold.expires_at > datetime.now(UTC) else None

    async def release(self, event_id: int, hold_id: str, buyer: str) -> None:
        result = await self._run("release", event_id, hold_id, buyer)
        if not result["ok"]:
            raise NotFound("no such hold (it may have expired)", code="unknown_hold")

    async def expire(self, event_id: int, limit: int = 1000) -> tuple[int, int]:
        """Return the stock of due holds; (expired now, still due)."""
        result = await self._run("expire", event_id, limit)
        return result["expired"], result["due"]

    # --- sales --------------------------------------------------------------------------------
    async def confirm(self, event_id: int, hold: Hold, order_number: str,
                      extra: dict | None = None) -> Sale:
        """Turn `hold` into sale `order_number` (idempotent); HoldRefused('stock_gone') when the
        hold lapsed and its stock was taken meanwhile."""
        fallback = {"ga": [[i.package_id, i.quantity, i.unit_price] for i in hold.items],
                    "seats": [[s.seat_id, s.package_id, s.price] for s in hold.seats]}
        result = await self._run("confirm", event_id, hold.id, order_number, hold.buyer,
                                 msgspec.json.encode(fallback), msgspec.json.encode(extra or {}),
                                 ORDERS_STREAM_MAXLEN)
        if not result["ok"]:
            raise HoldRefused(result.pop("reason"), {k: v for k, v in result.items() if k != "ok"})
        raw = msgspec.convert(result["sale"], _RawSale)
        return Sale(order_number=raw.order, event_id=event_id, hold_id=raw.hold, buyer=raw.buyer,
                    items=[i.public() for i in raw.ga], seats=[x.public() for x in raw.seats],
                    retaken=bool(result.get("retaken")),
                    replay=bool(result.get("replay")))

    async def unsell(self, event_id: int, order_number: str, restock: bool = True) -> bool:
        """Give a sale's tickets back; False when it was already given back."""
        result = await self._run("unsell", event_id, order_number, "1" if restock else "0")
        if not result["ok"]:
            raise NotFound(f"no sale {order_number} in event {event_id}", code="unknown_order")
        return not result["replay"]

    async def block_seats(self, event_id: int, seat_ids: list[int], block: bool = True) -> list[int]:
        result = await self._run("block_seats", event_id, msgspec.json.encode(seat_ids),
                                 "1" if block else "0")
        if not result["ok"]:
            if result["reason"] == "unknown_seat":
                raise NotFound(f"seats not on sale in this event: {result['seat_ids'][:20]}",
                               code="unknown_seat", fields={"seat_ids": "unknown seats"})
            raise Conflict(f"seats {result['seat_ids'][:20]} are held or sold",
                           code="seat_unavailable", fields={"seat_ids": "held or sold"})
        return result["changed"]

    # --- reads --------------------------------------------------------------------------------
    async def availability(self, event_id: int, with_seats: bool = False) -> Availability:
        status, stock, seats = await self.runner.run(
            self.scripts["availability"], self.event_keys(event_id), ("1" if with_seats else "0",))
        counters: dict[int, dict[str, int]] = {}
        for i in range(0, len(stock), 2):
            pid, field = stock[i].decode().split(":")
            counters.setdefault(int(pid), {})[field] = int(stock[i + 1])
        packages = {pid: PackageStock(package_id=pid, capacity=c.get("cap", 0),
                                      available=c.get("avail", 0), held=c.get("held", 0),
                                      sold=c.get("sold", 0)) for pid, c in counters.items()}
        seat_states = {int(seats[i]): SEAT_STATE[seats[i + 1][:1].decode()]
                       for i in range(0, len(seats), 2)}
        return Availability(event_id=event_id, status=status.decode() if status else None,
                            packages=packages, seats=seat_states)

    async def events_on_sale(self) -> list[int]:
        return sorted(int(x) for x in await self.client.smembers(self.keys.events_on_sale()))

    async def close(self) -> None:
        await self.runner.close()


def new_hold_id(event_id: int) -> str:
    """`H<event id>-<random>`: the event id lets any storefront find the hold's keys."""
    return f"H{event_id}-{secrets.token_urlsafe(12)}"


def event_of_hold(hold_id: str) -> int | None:
    head = hold_id.split("-", 1)[0]
    if len(hold_id) > 64 or not head.startswith("H") or not head[1:].isdigit():
        return None
    return int(head[1:])


def _hold(event_id: int, raw: _RawHold) -> Hold:
    total = sum(i.quantity * i.unit_price for i in raw.ga) + sum(s.price for s in raw.seats)
    return Hold(id=raw.id, event_id=event_id, buyer=raw.buyer, created_at=_dt(raw.created),
                expires_at=_dt(raw.expires), items=[i.public() for i in raw.ga],
                seats=[x.public() for x in raw.seats], total=total)
