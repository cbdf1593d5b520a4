"""Holds JSON API: hold tickets or seats for 15 minutes, look at a hold, give it back, and check
what a selection would get right now. Touches Redis only (plus a cached event lookup).

A buyer has one live hold (basket) per event: a second hold is refused `basket_exists` with the
basket's id, so the page can offer it (or give it back) instead. An `Idempotency-Key` header
makes a retry (a dropped connection, a double click) return the same hold.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Literal, NamedTuple

import msgspec
from aiohttp import web
from msgspec import Meta

from engine import metrics
from engine.errors import Forbidden, Invalid, NotFound
from engine.inventory import (
    Hold,
    HoldLine,
    HoldRefused,
    HoldSeat,
    Inventory,
    derived_hold_id,
    event_of_hold,
)
from storefront.api import Api, json_response, path_int
from storefront.appkeys import EVENT_CACHE, INVENTORY, SETTINGS
from storefront.buyer import Buyer, buyer_for_hold, current_buyer, hold_limits, set_guest_cookie
from storefront.errors import ApiError, error_response
from storefront.event_cache import EventFacts
from storefront.room.service import Gate, hold_gate

api = Api()
TAG = "holds"
EVENT = r"/api/events/{event_id:\d+}"

# refusal reason -> HTTP status: input the caller can fix is 422, the state of the sale 409
REFUSAL_STATUS = {
    "unknown_package": 422, "unknown_seat": 422, "seat_required": 422, "below_minimum": 422,
    "above_maximum": 422, "empty": 422, "bad_input": 422, "hold_id_taken": 409,
    "unknown_section": 422,
    "login_required": 401, "rate_limited": 429,
}


class Item(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    package_id: Annotated[int, Meta(ge=1, le=2**62)]
    quantity: Annotated[int, Meta(ge=1, le=1000)]


class Selection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """General-admission quantities and/or specific seats."""

    items: Annotated[list[Item], Meta(max_length=50)] = []
    seat_ids: Annotated[list[Annotated[int, Meta(ge=1, le=2**62)]], Meta(max_length=100)] = []


class BestAvailable(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """N seats side by side, in one section or any, optionally within a price band."""

    quantity: Annotated[int, Meta(ge=1, le=100)]
    section_id: Annotated[int, Meta(ge=1, le=2**62)] | None = None
    price_min: Annotated[int, Meta(ge=0, le=10**12)] | None = None
    price_max: Annotated[int, Meta(ge=0, le=10**12)] | None = None


class HoldOut(msgspec.Struct, kw_only=True):
    id: str
    event_id: int
    currency: str
    created_at: datetime
    expires_at: datetime
    items: list[HoldLine]
    seats: list[HoldSeat]
    total: int
    server_time: datetime  # the clock expires_at is measured by: count down from here


class PackageCheck(msgspec.Struct, kw_only=True):
    package_id: int
    requested: int
    available: int
    ok: bool


class SeatCheck(msgspec.Struct, kw_only=True):
    seat_id: int
    state: Literal["available", "blocked", "held", "sold", "unknown"]


class AvailabilityCheck(msgspec.Struct, kw_only=True):
    event_id: int
    on_sale: bool
    ok: bool
    packages: list[PackageCheck]
    seats: list[SeatCheck]


def _check_selection(sel: Selection) -> dict[int, int]:
    items: dict[int, int] = {}
    for item in sel.items:
        if item.package_id in items:
            raise Invalid(f"package {item.package_id} is listed twice; send one line per package",
                          fields={"items": "duplicate package_id"})
        items[item.package_id] = item.quantity
    if len(set(sel.seat_ids)) != len(sel.seat_ids):
        raise Invalid("a seat is listed twice", fields={"seat_ids": "duplicate seat id"})
    if not items and not sel.seat_ids:
        raise Invalid("choose at least one ticket or seat", fields={"items": "empty selection"})
    return items


def hold_out(hold: Hold, currency: str, now: datetime) -> HoldOut:
    return HoldOut(
        id=hold.id, event_id=hold.event_id, currency=currency,
        created_at=hold.created_at, expires_at=hold.expires_at,
        items=hold.items, seats=hold.seats,
        total=hold.total, server_time=now)


def refusal(exc: HoldRefused) -> ApiError:
    fields = {k: ", ".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in exc.detail.items()}
    headers, message = {}, str(exc)
    if exc.reason == "rate_limited":
        headers["Retry-After"] = str(max(1, -(-int(exc.detail.get("retry_after_ms", 1000)) // 1000)))
        if exc.detail.get("scope") == "new":
            message = "too many new visitors from your network just now; log in, or try again in a moment"
    return ApiError(REFUSAL_STATUS.get(exc.reason, 409), exc.reason, message, fields, headers)


def idempotency_key(request: web.Request, key: str | None = None) -> str | None:
    """The request's Idempotency-Key header (or `key`, a form's field), checked."""
    key = request.headers.get("Idempotency-Key") if key is None else key
    if key is not None and not (0 < len(key) <= 100 and key.isascii() and key.isprintable()):
        raise Invalid("Idempotency-Key must be 1 to 100 printable ASCII characters",
                      fields={"Idempotency-Key": "malformed"})
    return key


class HoldAttempt(NamedTuple):
    """What a hold request came to: the buyer it was made for (a guest identity minted on the way
    must be kept, made or refused: it was counted), and the hold or the API's refusal."""

    buyer: Buyer
    currency: str
    hold: Hold | None
    refused: ApiError | None


async def _pass_checked(request: web.Request, facts: EventFacts, key: str | None) -> Gate | None:
    """The waiting room's pass, when it is on; a refusal (`pass_*`) is counted as a hold's."""
    try:
        return await hold_gate(request, facts, key)
    except ApiError as refused:
        metrics.HOLDS.labels("refused", refused.code).inc()
        raise


async def attempt_hold(request: web.Request, event_id: int, body: Selection,
                       key: str | None) -> HoldAttempt:
    """Hold `body` for the caller (the JSON API and the event page's form both come here).
    Raises for input, a missing event or a guest where guests may not buy; a refusal of the sale
    itself is returned, so the caller can keep a new guest's cookie."""
    items = _check_selection(body)
    facts = await request.app[EVENT_CACHE].get(event_id)
    gate = await _pass_checked(request, facts, key)
    buyer = buyer_for_hold(request, facts.allow_guest_checkout)
    hold_id = None
    if key is not None:
        hold_id = derived_hold_id(event_id, request.app[SETTINGS].secret_key, buyer.key, key)
    return await _attempt(buyer, facts.currency, key, request.app[INVENTORY].hold(
        event_id, buyer.key, items, body.seat_ids, hold_id=hold_id, limits=hold_limits(request, buyer)),
        same=lambda hold: ({i.package_id: i.quantity for i in hold.items} == items
                           and {s.seat_id for s in hold.seats} == set(body.seat_ids)), gate=gate)


async def attempt_best_available(request: web.Request, event_id: int, body: BestAvailable,
                                 key: str | None) -> HoldAttempt:
    """Best available seats for the caller; raises and returns like `attempt_hold`."""
    if body.price_min is not None and body.price_max is not None and body.price_min > body.price_max:
        raise Invalid("price_min is above price_max", fields={"price_min": "above price_max"})
    facts = await request.app[EVENT_CACHE].get(event_id)
    gate = await _pass_checked(request, facts, key)
    buyer = buyer_for_hold(request, facts.allow_guest_checkout)
    hold_id = None
    if key is not None:
        hold_id = derived_hold_id(event_id, request.app[SETTINGS].secret_key, buyer.key, key)
    return await _attempt(buyer, facts.currency, key, request.app[INVENTORY].best_available(
        event_id, buyer.key, body.quantity, section_id=body.section_id, price_min=body.price_min,
        price_max=body.price_max, hold_id=hold_id, limits=hold_limits(request, buyer)),
        same=lambda hold: len(hold.seats) == body.quantity and not hold.items, gate=gate)


async def _attempt(buyer: Buyer, currency: str, key: str | None, making: Awaitable[Hold],
                   same: Callable[[Hold], bool], gate: Gate | None = None) -> HoldAttempt:
    """With an idempotency key, `same(hold)` says whether the hold answering the key is what
    this request asks for: a key reused for another selection is refused. A waiting-room pass
    (`gate`) is used by the basket once it is made (a refused hold leaves it live)."""
    if gate is not None and gate.retry_of:  # the pass made its basket: answer that one
        making.close()  # (not awaited: made no hold)
        making = gate.basket()
    try:
        hold = await making
    except HoldRefused as exc:
        metrics.HOLDS.labels("refused", exc.reason).inc()
        return HoldAttempt(buyer, currency, None, refusal(exc))
    if gate is not None and (refused := await gate.used(hold)) is not None:
        metrics.HOLDS.labels("refused", refused.code).inc()
        return HoldAttempt(buyer, currency, None, refused)
    if key is not None and not same(hold):
        metrics.HOLDS.labels("refused", "idempotency_key_reused").inc()
        return HoldAttempt(buyer, currency, None, ApiError(
            422, "idempotency_key_reused", "this Idempotency-Key was used for another selection: "
            "send a new key for a new choice", {"Idempotency-Key": "used for another selection"}))
    metrics.HOLDS.labels("made", "").inc()
    return HoldAttempt(buyer, currency, hold, None)


def keep_guest(request: web.Request, response: web.StreamResponse, attempt: HoldAttempt) -> None:
    """Set the cookie of a guest identity minted for `attempt` on `response` (unless the hold was
    rate-limited: then the identity was never counted, and is dropped)."""
    if attempt.refused is not None and attempt.refused.code == "rate_limited":
        return
    if attempt.buyer.new_guest_cookie:
        set_guest_cookie(request, response, attempt.buyer.new_guest_cookie)


def _answer(request: web.Request, attempt: HoldAttempt) -> web.Response:
    """201 with the hold, or the refusal in the error shape."""
    if attempt.refused is not None:
        error = attempt.refused
        response = error_response(error.status, error.code, error.message, error.fields,
                                  error.headers or None)
    else:
        assert attempt.hold is not None
        response = json_response(hold_out(attempt.hold, attempt.currency,
                                          attempt.hold.created_at), status=201)
    keep_guest(request, response, attempt)
    return response


@api.post(EVENT + "/holds", body=Selection, response=HoldOut, status=201, tag=TAG,
          summary="Hold tickets and/or seats for 15 minutes, all or nothing (one basket per "
                  "buyer per event; send an Idempotency-Key to make retries safe)",
          errors=(400, 401, 404, 409, 415, 422, 429))
async def create_hold(request: web.Request, body: Selection) -> web.Response:
    event_id = path_int(request, "event_id")
    return _answer(request, await attempt_hold(request, event_id, body, idempotency_key(request)))


@api.post(EVENT + "/best-available", body=BestAvailable, response=HoldOut, status=201, tag=TAG,
          summary="Hold the best N seats side by side, picked by the server (a group is never "
                  "split); same basket, limits and Idempotency-Key as holds",
          errors=(400, 401, 404, 409, 415, 422, 429))
async def best_available(request: web.Request, body: BestAvailable) -> web.Response:
    event_id = path_int(request, "event_id")
    return _answer(request, await attempt_best_available(request, event_id, body,
                                                         idempotency_key(request)))


@api.get(EVENT + "/holds/mine", response=list[HoldOut], tag=TAG,
         summary="The caller's live hold (basket) in this event, if any", errors=(404,))
async def my_holds(request: web.Request) -> list[HoldOut]:
    event_id = path_int(request, "event_id")
    facts = await request.app[EVENT_CACHE].get(event_id)
    buyer = current_buyer(request)
    if buyer is None:
        return []
    hold, now = await request.app[INVENTORY].find_hold(event_id, buyer=buyer)
    return [hold_out(hold, facts.currency, now)] if hold else []


async def _own_hold(request: web.Request) -> tuple[Inventory, Hold, str, datetime]:
    hold_id = request.match_info["hold_id"]
    event_id = event_of_hold(hold_id)
    if event_id is None:
        raise NotFound(f"no hold {hold_id!r}", code="unknown_hold")
    inventory = request.app[INVENTORY]
    hold, now = await inventory.find_hold(event_id, hold_id=hold_id)
    if hold is None:
        raise NotFound("this hold does not exist or has expired", code="unknown_hold")
    buyer = current_buyer(request)
    if buyer != hold.buyer:
        raise Forbidden("this hold is not yours", code="not_owner")
    return inventory, hold, buyer, now


@api.get("/api/holds/{hold_id}", response=HoldOut, tag=TAG,
         summary="A live hold of the caller's, with its expiry", errors=(403, 404))
async def get_hold(request: web.Request) -> HoldOut:
    _, hold, _, now = await _own_hold(request)
    facts = await request.app[EVENT_CACHE].get(hold.event_id)
    return hold_out(hold, facts.currency, now)


@api.delete("/api/holds/{hold_id}", tag=TAG, summary="Give a hold back at once (owner only)",
            errors=(403, 404))
async def delete_hold(request: web.Request) -> None:
    inventory, hold, buyer, _ = await _own_hold(request)
    await inventory.release(hold.event_id, hold.id, buyer)


@api.post(EVENT + "/check-availability", body=Selection, response=AvailabilityCheck, tag=TAG,
          summary="Would this selection be available right now? (holds nothing)",
          errors=(400, 404, 415, 422))
async def check_availability(request: web.Request, body: Selection) -> AvailabilityCheck:
    event_id = path_int(request, "event_id")
    items = _check_selection(body)
    await request.app[EVENT_CACHE].get(event_id)
    live = await request.app[INVENTORY].availability(event_id, seat_ids=body.seat_ids)
    packages = []
    for pid, qty in items.items():
        stock = live.packages.get(pid)
        if stock is None:
            raise Invalid(f"package {pid} is not on sale in this event", fields={"items": f"unknown package {pid}"})
        packages.append(PackageCheck(package_id=pid, requested=qty, available=stock.available,
                                     ok=stock.available >= qty))
    seats = [SeatCheck(seat_id=s, state=live.seats.get(s, "unknown")) for s in body.seat_ids]
    on_sale = live.status == "on_sale"
    ok = on_sale and all(p.ok for p in packages) and all(s.state == "available" for s in seats)
    return AvailabilityCheck(event_id=event_id, on_sale=on_sale, ok=ok, packages=packages, seats=seats)
