"""Inventory: stock and seats of events on sale, held and sold only through the Lua scripts.

The interface is small: `load`, `hold`, `find_hold`, `release`, `expire`, `confirm`, `unsell`,
`availability`. Results are typed; a refusal raises `HoldRefused` with a typed reason. No Redis
detail leaks out. Stock counters obey `available + held + sold == capacity` per package; a seat is
in exactly one state: available, blocked, held by one hold, or sold to one order.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from typing import Literal

import msgspec
import redis.asyncio as redis

from engine import catalog_types as t
from engine.errors import Conflict, Invalid, NotFound
from engine.keys import Keys
from engine.lua import Script, ScriptRunner, load_script

Reason = Literal[
    "not_loaded", "not_on_sale", "unknown_package", "unknown_seat", "seat_required",
    "seat_unavailable", "empty", "sale_not_open", "sale_closed", "below_minimum", "above_maximum",
    "limit_exceeded", "event_limit_exceeded", "sold_out", "not_enough", "hold_id_taken",
    "hold_already_sold", "basket_exists", "rate_limited", "login_required", "bad_input",
    "no_adjacent_run", "unknown_section",
    # confirm only
    "stock_gone", "refunded", "order_number_taken", "not_owner", "hold_changed", "restoring",
]
EVENT_KEYS = ("meta", "pkgs", "stock", "seats", "seatinfo", "holds", "expiry", "buyers", "sales",
              "orders", "limits")
SCRIPTS = ("load_stock", "hold", "best_available", "release", "expire", "confirm", "unsell",
           "availability", "get_hold", "begin_restore", "open_stock")
STATUS_FOR = {"published": "on_sale", "postponed": "paused", "cancelled": "closed",
              "completed": "closed", "draft": "closed"}
LAZY_EXPIRE = 20  # due holds a hold call returns first
# Bounds on one script call's work (the scripts check them too): see includes/common.lua.
MAX_LINES = 50
MAX_SEATS = 100
MAX_QUANTITY = 1000
MAX_ID = 10**14 - 1
SEATS_PER_LOAD = 500  # a load call stays well under 100 ms of Redis time


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
        "hold_already_sold": f"this hold was already sold as order {d.get('order')}",
        "basket_exists": f"you already hold tickets for this event (hold {d.get('hold_id')}): "
                         "check out or give them back before choosing again",
        "event_limit_exceeded": f"this event allows {d.get('limit')} tickets per buyer; you "
                                f"already have {d.get('already')}",
        "rate_limited": "too many attempts; wait a moment and try again",
        "login_required": "log in to buy tickets for this event",
        "bad_input": f"the request is malformed ({d.get('argument', 'arguments')})",
        "no_adjacent_run": f"no {d.get('quantity')} seats side by side are free there; try fewer "
                           "seats, another section or another price",
        "unknown_section": f"section {d.get('section_id')} is not part of this event",
        "stock_gone": "the hold expired and its tickets were sold to someone else",
        "refunded": f"order {d.get('order')} was refunded; it cannot be confirmed again",
        "order_number_taken": f"order number {d.get('order')} belongs to another hold",
        "hold_changed": "the hold now holds other tickets than the order paid for",
        "restoring": "this event's sales are being restored from the record; try again shortly",
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
    status: str | None  # on_sale | paused | closed | restoring; None when not loaded
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


SEAT_STATE = {"a": "available", "b": "blocked", "x": "blocked", "h": "held", "s": "sold"}


class HoldLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Rate limits on making holds, checked inside the hold script (no extra round trip), all in
    the event: holds per buyer, holds per client address (`client`, as the storefront buckets
    addresses), and guests new to the event per client address (`new_guest`: a guest's first
    hold here, so fresh identities cost the address, wherever they were minted). Each is
    `(burst, per_minute)`; a burst of 0 means no limit."""

    client: str = ""
    buyer: tuple[int, int] = (0, 1)
    ip: tuple[int, int] = (0, 1)
    new_guest: tuple[int, int] = (0, 1)


NO_LIMITS = HoldLimits()


@functools.lru_cache(maxsize=64)
def _rates(buyer: tuple[int, int], ip: tuple[int, int], new_guest: tuple[int, int]) -> bytes:
    """The limits as the hold script takes them (the same few for every call of a process)."""
    return b"%d %d %d %d %d %d" % (*buyer, *ip, *new_guest)


class LoadResult(msgspec.Struct, kw_only=True):
    seats_added: int = 0
    conflicts: list[int] = []  # seats the catalog blocks that a buyer holds or bought
    skipped: bool = False      # a narrowing load of an event that is not loaded yet


def _whole(value: object, lo: int, hi: int) -> bool:
    return type(value) is int and lo <= value <= hi


def check_selection(items: dict[int, int], seat_ids: list[int]) -> None:
    """Refuse (Invalid) what the hold script would refuse as malformed: the engine checks its
    own input, the script checks again before it writes. (On every hold: kept to plain loops.)"""
    if len(items) > MAX_LINES:
        raise Invalid(f"at most {MAX_LINES} packages per hold", fields={"items": "too many"})
    for pid, qty in items.items():
        if type(pid) is not int or not 1 <= pid <= MAX_ID:
            raise Invalid(f"package id {pid!r} is not a valid id", fields={"items": "package_id"})
        if type(qty) is not int or not 1 <= qty <= MAX_QUANTITY:
            raise Invalid(f"quantity {qty!r} must be a whole number from 1 to {MAX_QUANTITY}",
                          fields={"items": "quantity"})
    if not seat_ids:
        return
    if len(seat_ids) > MAX_SEATS:
        raise Invalid(f"at most {MAX_SEATS} seats per hold", fields={"seat_ids": "too many"})
    if not all(_whole(s, 1, MAX_ID) for s in seat_ids):
        raise Invalid("seat ids are positive whole numbers", fields={"seat_ids": "not an id"})
    if len(set(seat_ids)) != len(seat_ids):
        raise Invalid("a seat is listed twice", fields={"seat_ids": "duplicate seat id"})


def _own_event(event_id: int, hold_id: str) -> None:
    if event_of_hold(hold_id) != event_id:
        raise Invalid(f"hold {hold_id!r} is not a hold of event {event_id}",
                      code="wrong_event", fields={"hold_id": "another event's hold"})


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

    def add_script(self, name: str) -> None:
        """Make one more script of scripts/lua/ callable through this inventory's runner (the
        order drafts' scripts share the event keys and the runner)."""
        if name not in self.scripts:
            self.scripts[name] = load_script(name)

    def event_keys(self, event_id: int) -> tuple[str, ...]:
        keys = self._event_keys.get(event_id)
        if keys is None:
            if len(self._event_keys) > 10_000:
                self._event_keys.clear()
            keys = self._event_keys[event_id] = tuple(self.keys.event(event_id, n) for n in EVENT_KEYS)
        return keys

    async def _run(self, name: str, event_id: int, *args, extra_keys: tuple[str, ...] = ()) -> dict:
        raw = await self.runner.run(self.scripts[name], self.event_keys(event_id), args,
                                    extra_keys=extra_keys)
        return _decode(raw)

    # --- loading ------------------------------------------------------------------------------
    async def load(self, event: t.Event, packages: list[t.Package], seat_map: t.SeatMap | None,
                   sold: dict[int, int] | None = None, *, mode: Literal["full", "narrow"] = "full",
                   version: int = 0, restoring: bool = False) -> LoadResult:
        """Bring an event's stock in step with the catalog (see scripts/lua/load_stock.lua).

        `full` applies everything and records `version`; `narrow` (inside a catalog transaction,
        before its commit) applies only what takes stock off sale. Raises Conflict when a
        capacity would fall below what is held + sold, or a seat to block is held or sold.
        With `restoring` (a full load after Redis lost the event) the event is loaded in the
        `restoring` state, in which nothing is held or sold but the record's sales re-applied,
        from its first write on; `open` ends it."""
        sections = seat_map.sections if seat_map else []
        seat_package = {s.id: section.package_id for section in sections for s in section.seats}
        seated = {p for p in seat_package.values() if p is not None}
        head = {
            "mode": mode, "version": version,
            "status": "restoring" if restoring else STATUS_FOR[event.status],
            "currency": event.currency, "guests": 1 if event.allow_guest_checkout else 0,
            "buyer_cap": event.max_tickets_per_buyer,
        }
        package_rows = [{
            "id": p.id, "capacity": p.capacity, "sold": (sold or {}).get(p.id, 0),
            "price": p.price, "min": p.min_per_order, "max": p.max_per_order,
            "limit": p.per_buyer_limit or 0, "opens": _ms(p.opens_at), "closes": _ms(p.closes_at),
            "active": 1 if p.is_active else 0, "seated": 1 if p.id in seated else 0,
        } for p in packages]
        places = {seat: place for section in sections for seat, place in _layout(section).items()}
        section_ranks = [[section.id, rank] for rank, section in enumerate(sections, 1)]
        rank_of = {section.id: rank for rank, section in enumerate(sections, 1)}
        seats = [{"id": s.id, "p": seat_package[s.id], "price": s.price,
                  "state": "available" if s.status == "reserved" else s.status,
                  "s": rank_of[section.id], "r": places[s.id][0], "c": places[s.id][1]}
                 for section in sections for s in section.seats if seat_package[s.id] is not None]
        chunks = [seats[i:i + SEATS_PER_LOAD] for i in range(0, len(seats), SEATS_PER_LOAD)] or [[]]
        outcome = LoadResult()
        for n, chunk in enumerate(chunks):
            payload = {**head, "final": n == len(chunks) - 1,
                       "packages": package_rows if n == 0 else [],
                       "sections": section_ranks if n == 0 else [], "seats": chunk}
            result = await self._run("load_stock", event.id, msgspec.json.encode(payload),
                                     extra_keys=self.layout_keys(event.id))
            if not result["ok"]:
                raise _load_refusal(result)
            if result.get("skipped"):
                return LoadResult(skipped=True)
            outcome.seats_added += result["seats_added"]
            outcome.conflicts += result.get("conflicts") or []
        if mode == "full":
            await self.client.sadd(self.keys.events_on_sale(), event.id)
            if event.status not in ("published", "postponed") and not restoring:
                await self.drain(event.id)
        return outcome

    async def begin_restore(self, event_id: int) -> str | None:
        """Stop a loaded event's sales (`restoring`) until `open`; its status before (None: not
        loaded, the restoring `load` then marks it)."""
        result = await self._run("begin_restore", event_id)
        return result["status"] or None

    async def open(self, event: t.Event) -> bool:
        """End a restoration (see `load`): the event takes the status its catalog gives it, and a
        closed one gives its holds back. False when it was not restoring."""
        result = await self._run("open_stock", event.id, STATUS_FOR[event.status])
        if not result["ok"]:
            raise Invalid(_describe("bad_input", result), code="bad_input")
        if result["opened"] and event.status not in ("published", "postponed"):
            await self.drain(event.id)
        return bool(result["opened"])

    def layout_keys(self, event_id: int) -> tuple[str, str]:
        """The seat layout (for best available) and the sections' ranks of an event."""
        return self.keys.event(event_id, "layout"), self.keys.event(event_id, "sections")

    async def drain(self, event_id: int) -> int:
        """Give back every live hold of a closed event; it then leaves the events on sale."""
        released = 0
        while True:
            expired, due, status = await self.expire(event_id, 1000, with_status=True)
            released += expired
            if not due:
                break
        if status in ("closed", None):
            await self.client.srem(self.keys.events_on_sale(), event_id)
        return released

    # --- holds --------------------------------------------------------------------------------
    async def hold(self, event_id: int, buyer: str, items: dict[int, int] | None = None,
                   seat_ids: list[int] | None = None, *, hold_id: str | None = None,
                   ttl_seconds: int | None = None, limits: HoldLimits = NO_LIMITS) -> Hold:
        """Hold `items` (package id -> quantity) and `seat_ids` for `buyer`, all or nothing.

        A buyer has one live hold per event: a second is refused `basket_exists` (retrying the
        same `hold_id` returns the same hold). Invalid input raises Invalid before Redis."""
        items, seat_ids = items or {}, list(seat_ids or [])
        check_selection(items, seat_ids)
        request = {"ga": [[p, q] for p, q in items.items()], "seats": seat_ids}
        return await self._make_hold("hold", event_id, buyer, request, hold_id, ttl_seconds, limits)

    async def best_available(self, event_id: int, buyer: str, quantity: int, *,
                             section_id: int | None = None, price_min: int | None = None,
                             price_max: int | None = None, hold_id: str | None = None,
                             ttl_seconds: int | None = None, limits: HoldLimits = NO_LIMITS) -> Hold:
        """Hold the best `quantity` seats side by side (scripts/lua/best_available.lua says which
        are best), in one section or any, within a price band; HoldRefused('no_adjacent_run')
        when no row has that many free together: a group is never split."""
        if not _whole(quantity, 1, MAX_SEATS):
            raise Invalid(f"quantity must be 1 to {MAX_SEATS}", fields={"quantity": "out of range"})
        for name, value in (("section_id", section_id), ("price_min", price_min), ("price_max", price_max)):
            if value is not None and not _whole(value, 0, MAX_ID):
                raise Invalid(f"{name} must be a whole number", fields={name: "not a whole number"})
        request = {"quantity": quantity, "section": section_id or 0, "price_min": price_min or 0,
                   "price_max": price_max or 0}
        return await self._make_hold("best_available", event_id, buyer, request, hold_id,
                                     ttl_seconds, limits, self.layout_keys(event_id))

    async def _make_hold(self, script: str, event_id: int, buyer: str, request: dict,
                         hold_id: str | None, ttl_seconds: int | None, limits: HoldLimits,
                         extra_keys: tuple[str, ...] = ()) -> Hold:
        """Run a hold script (includes/holding.lua says its arguments): a hold id the caller
        sends may have been used before and is checked; one made here cannot have been."""
        keyed = "0"
        if hold_id:
            _own_event(event_id, hold_id)
            keyed = "1"
        else:
            hold_id = new_hold_id(event_id)
        ttl = ttl_seconds * 1000 if ttl_seconds else self.hold_ttl_ms
        result = await self._run(script, event_id, hold_id, buyer, ttl, msgspec.json.encode(request),
                                 LAZY_EXPIRE, _rates(limits.buyer, limits.ip, limits.new_guest),
                                 limits.client or "unknown", keyed, extra_keys=extra_keys)
        if not result["ok"]:
            raise HoldRefused(result.pop("reason"), {k: v for k, v in result.items() if k != "ok"})
        return _hold(event_id, msgspec.convert(result["hold"], _RawHold))

    async def find_hold(self, event_id: int, *, hold_id: str | None = None,
                        buyer: str | None = None) -> tuple[Hold | None, datetime]:
        """A live hold by id, or `buyer`'s basket in the event, judged by the server's clock;
        with the server's time (for countdowns)."""
        if hold_id is not None:
            _own_event(event_id, hold_id)
        result = await self._run("get_hold", event_id, hold_id or "", buyer or "")
        if not result["ok"]:
            raise Invalid(_describe("bad_input", result), code="bad_input")
        raw = result.get("hold")
        hold = _hold(event_id, msgspec.convert(raw, _RawHold)) if raw else None
        return hold, _dt(result["now"])

    async def get_hold(self, event_id: int, hold_id: str) -> Hold | None:
        return (await self.find_hold(event_id, hold_id=hold_id))[0]

    async def release(self, event_id: int, hold_id: str, buyer: str) -> None:
        _own_event(event_id, hold_id)
        result = await self._run("release", event_id, hold_id, buyer,
                                 extra_keys=(self.keys.draft(event_id, hold_id),))
        if not result["ok"]:
            if result["reason"] == "payment_pending":
                raise Conflict("a payment for this hold is under way; it cannot be given back now",
                               code="payment_pending")
            raise NotFound("no such hold (it may have expired)", code="unknown_hold")

    async def expire(self, event_id: int, limit: int = 1000, *, with_status: bool = False):
        """Return the stock of due holds (every live hold of a closed event); (expired now,
        still due), and the event's status with `with_status`."""
        result = await self._run("expire", event_id, limit)
        if not result["ok"]:
            raise Invalid(_describe("bad_input", result), code="bad_input")
        if with_status:
            return result["expired"], result["due"], result["status"] or None
        return result["expired"], result["due"]

    # --- sales --------------------------------------------------------------------------------
    async def confirm(self, event_id: int, hold: Hold, order_number: str,
                      extra: dict | None = None, *, restore: bool = False) -> Sale:
        """Turn `hold` into sale `order_number` (idempotent). When the hold lapsed, the late
        payment policy of scripts/lua/confirm.lua decides: the stock is taken again, or
        HoldRefused says why not (`stock_gone`, `not_on_sale`, `limit_exceeded`, ...) and the
        caller refunds."""
        _own_event(event_id, hold.id)
        fallback = {"ga": [[i.package_id, i.quantity, i.unit_price] for i in hold.items],
                    "seats": [[s.seat_id, s.package_id, s.price] for s in hold.seats]}
        result = await self._run("confirm", event_id, hold.id, order_number, hold.buyer,
                                 msgspec.json.encode(fallback), msgspec.json.encode(extra or {}),
                                 "restore" if restore else "")
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

    # --- reads --------------------------------------------------------------------------------
    async def availability(self, event_id: int, with_seats: bool = False,
                           seat_ids: list[int] | None = None) -> Availability:
        """Status and counters; with `with_seats` every seat's state, with `seat_ids` (at most
        MAX_SEATS) only those seats' states."""
        if seat_ids:
            if len(seat_ids) > MAX_SEATS:
                raise Invalid(f"at most {MAX_SEATS} seats at a time", fields={"seat_ids": "too many"})
            args: tuple = ("ids", *seat_ids)
        else:
            args = ("1" if with_seats else "0",)
        status, stock, seats = await self.runner.run(
            self.scripts["availability"], self.event_keys(event_id), args)
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

    async def loaded_versions(self, event_ids: list[int]) -> dict[int, tuple[int | None, bool]]:
        """Per event: the catalog version Redis has loaded (None: not loaded) and whether a
        load is pending: a narrowing load whose full load after the commit has not run, or a
        restoration that has not finished (the event is still `restoring`)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for event_id in event_ids:
                pipe.hmget(self.keys.event(event_id, "meta"), "status", "version", "pending")
            rows = await pipe.execute()
        return {event_id: (int(version or 0) if status else None,
                           pending is not None or status == b"restoring")
                for event_id, (status, version, pending) in zip(event_ids, rows, strict=True)}

    async def sold_orders(self, event_id: int, order_numbers: list[str]) -> set[str]:
        """Which of `order_numbers` this Redis has as sales of the event (sold or refunded)."""
        if not order_numbers:
            return set()
        found = await self.client.hmget(self.keys.event(event_id, "sales"), order_numbers)
        return {n for n, raw in zip(order_numbers, found, strict=True) if raw is not None}

    async def status(self, event_id: int) -> str | None:
        """The event's status in Redis: on_sale | paused | closed | restoring; None: not loaded."""
        raw = await self.client.hget(self.keys.event(event_id, "meta"), "status")
        return raw.decode() if raw else None

    async def server_epoch(self) -> str:
        """Changes whenever the Redis server restarts (a restore from a copy implies one): its
        run id (every node's, on a cluster)."""
        info = await self.client.info("server")
        if isinstance(info, dict) and "run_id" in info:
            return str(info["run_id"])
        return ",".join(sorted(str(v.get("run_id")) for v in info.values()))  # per node

    async def events_on_sale(self) -> list[int]:
        return sorted(int(x) for x in await self.client.smembers(self.keys.events_on_sale()))

    async def close(self) -> None:
        await self.runner.close()


def _load_refusal(result: dict) -> Conflict:
    reason = result["reason"]
    if reason == "package_sold_by_quantity":
        return Conflict(f"package {result['package_id']} already has {result['committed']} tickets "
                        "held or sold by quantity; give the seats a new package",
                        code="package_sold_by_quantity", fields={"package_id": "sold by quantity"})
    if reason == "capacity_below_committed":
        return Conflict(f"capacity of package {result['package_id']} cannot go below the "
                        f"{result['committed']} tickets already held or sold",
                        code="capacity_below_committed",
                        fields={"capacity": f"at least {result['committed']}"})
    if reason == "seat_unavailable":
        return Conflict(f"seats {result['seat_ids'][:20]} are held or sold and cannot be blocked",
                        code="seat_unavailable", fields={"seat_ids": "held or sold"})
    return Conflict(f"the stock could not be loaded: {reason} ({result.get('argument', '')})",
                    code="stock_load_refused")


def _row_order(label: str) -> tuple[int, str]:
    """Rows in the order people read them: A..Z, AA..; 1, 2, .. 10 (shorter labels first)."""
    return (len(label), label)


def _layout(section: t.Section) -> dict[int, tuple[int, int]]:
    """Seat id -> (row rank, column) in one section: rows front to back, columns left to right.
    Custom seats have no column: their order in the row (by seat id) stands in for it."""
    rows = sorted({s.row or "" for s in section.seats}, key=_row_order)
    rank = {row: min(i, 99_999) for i, row in enumerate(rows, 1)}
    places: dict[int, tuple[int, int]] = {}
    position: dict[str, int] = {}
    for seat in sorted(section.seats, key=lambda s: s.id):
        row = seat.row or ""
        position[row] = position.get(row, 0) + 1
        column = seat.column if seat.column is not None else position[row]
        places[seat.id] = (rank[row], min(max(column, 0), 99_999))
    return places


def new_hold_id(event_id: int) -> str:
    """`H<event id>-<random>`: the event id lets any storefront find the hold's keys."""
    return f"H{event_id}-{secrets.token_urlsafe(12)}"


def derived_hold_id(event_id: int, secret: str, buyer: str, idempotency_key: str) -> str:
    """The hold id of `buyer`'s request with `idempotency_key`: a retry of the same request
    (a dropped connection, a double click) names the same hold, and nobody else can guess it."""
    mac = hmac.new(secret.encode(), f"hold\x00{event_id}\x00{buyer}\x00{idempotency_key}".encode(),
                   hashlib.sha256).digest()
    return f"H{event_id}-{base64.urlsafe_b64encode(mac[:16]).decode().rstrip('=')}"


def event_of_hold(hold_id: str) -> int | None:
    head = hold_id.split("-", 1)[0]
    if (len(hold_id) > 64 or not head.startswith("H") or not head[1:].isascii()
            or not head[1:].isdigit() or len(head) > 15):
        return None
    return int(head[1:])


def _hold(event_id: int, raw: _RawHold) -> Hold:
    total = sum(i.quantity * i.unit_price for i in raw.ga) + sum(s.price for s in raw.seats)
    return Hold(id=raw.id, event_id=event_id, buyer=raw.buyer, created_at=_dt(raw.created),
                expires_at=_dt(raw.expires), items=[i.public() for i in raw.ga],
                seats=[x.public() for x in raw.seats], total=total)
