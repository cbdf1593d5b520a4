"""Order drafts: the checkout of one hold, kept in Redis beside it (nothing on the way from a hold
to a payment waits on Postgres).

A draft carries the order number (`ORD-{timestamp}-{random}`), the attendees (one per ticket), the
billing details, the amounts in minor units (subtotal from the hold's own prices, the event's
per-ticket service fee, total) and the payment attempts, each with our unique reference
(`<order number>-<random>`) and its state. It changes only through the scripts of
`scripts/lua/` (checkout, begin_payment, payment_update, cancel_order; extend for the hold), which
check the hold by the server's clock. Drafts outlive their hold (a late payment still needs one)
and expire after `DRAFT_TTL_SECONDS`. A small index (`Keys.order`) finds a draft by order number.

Order status: draft -> awaiting_payment -> paid | payment_failed (-> awaiting_payment again) |
refund_due (paid, but the tickets could not be sold: the payment is refunded); cancelled.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from engine.errors import Conflict, Forbidden, Invalid, NotFound
from engine.inputs import ONE_LINE
from engine.inventory import Hold, HoldLine, HoldSeat, Inventory, _dt, _hold, _own_event, _RawHold
from engine.payments.base import NextAction

DRAFT_TTL_SECONDS = 7 * 24 * 3600
STARTING_STALE_MS = 60_000  # an attempt the gateway never answered for this long may be replaced
OrderStatus = Literal["draft", "awaiting_payment", "paid", "payment_failed", "refund_due", "cancelled"]
AttemptState = Literal["starting", "pending", "succeeded", "failed", "abandoned"]

# names go into email headers, PDF tickets and the gate's screen: one line, no bidi overrides
PersonName = Annotated[str, Meta(min_length=1, max_length=120, pattern=ONE_LINE)]
# plain ASCII addresses: the local part of RFC 5322 atoms and dots (no spaces, no `<>(),;:"[]\`,
# nothing a To header could read as a second address or a comment), a domain of ASCII labels
Email = Annotated[str, Meta(min_length=3, max_length=254, pattern=(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+\Z"))]
Phone = Annotated[str, Meta(min_length=7, max_length=20, pattern=r"^\+?[0-9][0-9 ]{5,18}[0-9]\Z")]


class Attendee(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: PersonName
    email: Email
    phone: Phone | None = None


class Billing(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: PersonName
    email: Email
    phone: Phone | None = None


class PaymentAttempt(msgspec.Struct, kw_only=True):
    reference: str
    gateway: str
    method: str
    state: AttemptState
    created_at: datetime
    gateway_ref: str | None = None
    action: NextAction | None = None
    reason: str | None = None


class OrderDraft(msgspec.Struct, kw_only=True):
    order_number: str
    event_id: int
    hold_id: str
    buyer: str
    status: OrderStatus
    attendees: list[Attendee]
    billing: Billing
    items: list[HoldLine]
    seats: list[HoldSeat]
    tickets: int
    subtotal: int
    fees: int
    total: int
    currency: str
    payments: list[PaymentAttempt]
    created_at: datetime
    updated_at: datetime

    def as_hold(self) -> Hold:
        """The hold as this draft recorded it (what a late payment asks to take again)."""
        now = self.updated_at
        return Hold(id=self.hold_id, event_id=self.event_id, buyer=self.buyer, created_at=now,
                    expires_at=now, items=self.items, seats=self.seats, total=self.subtotal)

    def attempt(self, reference: str) -> PaymentAttempt | None:
        return next((a for a in self.payments if a.reference == reference), None)


class SaleRecord(msgspec.Struct, kw_only=True):
    """What one sale is, as the record keeps it: the `extra` field of the event's orders-stream
    entry (written by scripts/lua/confirm.lua), and the `sale` column of its succeeded payment.

    Format v1 (JSON): {v: 1, order_number, hold_id, buyer, ga: [[package id, quantity, unit
    price]], seats: [[seat id, package id, price]], attendees: [{name, email, phone}] one per
    ticket in that order (ga lines first, then seats), billing: {name, email, phone}, subtotal,
    fees, total (minor units), currency, payment (our reference) or null, gateway or null,
    restored: true when re-applied from the record after Redis lost it}. Readers ignore fields
    they do not know, so the format can grow; a change of meaning gets a new `v`.
    The stream entry itself: `type` "sale", `order` the order number, `sale` the sale as the
    script stores it ({order, hold, buyer, lines, ga, seats, at (ms), state}), `extra` this."""

    v: int = 1
    order_number: str
    hold_id: str
    buyer: str
    ga: list[tuple[int, int, int]]
    seats: list[tuple[int, int, int]]
    attendees: list[Attendee]
    billing: Billing
    subtotal: int
    fees: int
    total: int
    currency: str
    payment: str | None = None
    gateway: str | None = None
    restored: bool = False

    def as_hold(self, event_id: int) -> Hold:
        """The hold as it was sold (what re-applying the sale takes again)."""
        now = datetime.now(UTC)
        return Hold(id=self.hold_id, event_id=event_id, buyer=self.buyer, created_at=now,
                    expires_at=now,
                    items=[HoldLine(package_id=p, quantity=q, unit_price=u) for p, q, u in self.ga],
                    seats=[HoldSeat(seat_id=s, package_id=p, price=u) for s, p, u in self.seats],
                    total=self.subtotal)


def sale_record(draft: OrderDraft, payment: str | None, gateway: str | None) -> SaleRecord:
    return SaleRecord(
        order_number=draft.order_number, hold_id=draft.hold_id, buyer=draft.buyer,
        ga=[(i.package_id, i.quantity, i.unit_price) for i in draft.items],
        seats=[(s.seat_id, s.package_id, s.price) for s in draft.seats],
        attendees=draft.attendees, billing=draft.billing, subtotal=draft.subtotal,
        fees=draft.fees, total=draft.total, currency=draft.currency, payment=payment,
        gateway=gateway)


class OrderRefused(Conflict):
    """A checkout, payment or cancellation the draft's state does not allow; `code` says why."""


_REFUSALS = {
    "hold_expired": "your hold has expired and its tickets went back on sale; choose again",
    "not_owner": "this order is not yours",
    "attendees_mismatch": "give one attendee per ticket",
    "payment_in_progress": "a payment for this order is under way; wait for it to finish",
    "payment_pending": "a payment for this order is under way; finish it or wait for it to fail",
    "already_paid": "this order is already paid",
    "cancelled": "this order was cancelled",
    "no_draft": "check out first: attendees and billing details are missing",
    "too_many_attempts": "too many payment attempts for this order",
    "unknown_reference": "no such payment attempt",
}


def new_order_number(now: float | None = None) -> str:
    """`ORD-{unix seconds}-{8 random hex}`."""
    return f"ORD-{int(now if now is not None else time.time())}-{secrets.token_hex(4).upper()}"


def new_reference(order_number: str) -> str:
    """Our reference for one payment attempt: unique, and it names its order."""
    return f"{order_number}-{secrets.token_hex(3).upper()}"


def order_of_reference(reference: str) -> str | None:
    number, _, _ = reference.rpartition("-")
    return number if number.startswith("ORD-") else None


def _draft(event_id: int, raw: dict) -> OrderDraft:
    def lst(v):
        return [] if v in ({}, None) else v

    return OrderDraft(
        order_number=raw["order"], event_id=event_id, hold_id=raw["hold"], buyer=raw["buyer"],
        status=raw["status"], attendees=msgspec.convert(lst(raw.get("attendees")), list[Attendee]),
        billing=msgspec.convert(raw["billing"], Billing),
        items=[HoldLine(package_id=p, quantity=q, unit_price=u) for p, q, u in lst(raw.get("items"))],
        seats=[HoldSeat(seat_id=s, package_id=p, price=u) for s, p, u in lst(raw.get("seats"))],
        tickets=raw["tickets"], subtotal=raw["subtotal"], fees=raw["fees"], total=raw["total"],
        currency=raw["currency"],
        payments=[PaymentAttempt(
            reference=a["reference"], gateway=a["gateway"], method=a["method"], state=a["state"],
            created_at=_dt(a["created"]), gateway_ref=a.get("gateway_ref"),
            action=msgspec.convert(a["action"], NextAction) if isinstance(a.get("action"), dict) else None,
            reason=a.get("reason")) for a in lst(raw.get("payments"))],
        created_at=_dt(raw["created"]), updated_at=_dt(raw["updated"]))


class Orders:
    """Order drafts of every event, in Redis, through the scripts."""

    def __init__(self, inventory: Inventory, draft_ttl_seconds: int = DRAFT_TTL_SECONDS):
        self.inventory = inventory
        self.keys = inventory.keys
        self.client = inventory.client
        self.ttl = draft_ttl_seconds
        for name in ("checkout", "begin_payment", "extend", "payment_update", "cancel_order"):
            inventory.add_script(name)

    def _draft_key(self, event_id: int, hold_id: str) -> tuple[str, ...]:
        return (self.keys.draft(event_id, hold_id),)

    async def _run(self, name: str, event_id: int, hold_id: str | None, *args) -> dict:
        extra = self._draft_key(event_id, hold_id) if hold_id else ()
        result = await self.inventory._run(name, event_id, *args, extra_keys=extra)
        if not result["ok"]:
            reason = result["reason"]
            if reason == "bad_input":
                raise Invalid(f"the request is malformed ({result.get('argument')})", code="bad_input")
            fields = {k: str(v) for k, v in result.items() if k not in ("ok", "reason")}
            if reason == "not_owner":
                raise Forbidden(_REFUSALS[reason], code=reason)
            if reason == "attendees_mismatch":
                raise Invalid(f"give one attendee per ticket: {result['expected']} tickets, "
                              f"{result['given']} attendees", code=reason,
                              fields={"attendees": f"{result['expected']} expected"})
            raise OrderRefused(_REFUSALS.get(reason, reason), code=reason, fields=fields)
        return result

    async def checkout(self, event_id: int, hold_id: str, buyer: str, attendees: list[Attendee],
                       billing: Billing, fee_per_ticket: int, currency: str
                       ) -> tuple[OrderDraft, Hold, datetime]:
        """Write (or rewrite, while nothing is being paid) the draft of a live hold."""
        _own_event(event_id, hold_id)
        payload = {"order": new_order_number(), "attendees": msgspec.to_builtins(attendees),
                   "billing": msgspec.to_builtins(billing), "fee": fee_per_ticket, "currency": currency}
        result = await self._run("checkout", event_id, hold_id, hold_id, buyer,
                                 msgspec.json.encode(payload), self.ttl)
        draft = _draft(event_id, result["draft"])
        await self.client.set(self.keys.order(draft.order_number), f"{event_id}:{hold_id}", ex=self.ttl)
        return draft, _hold(event_id, msgspec.convert(result["hold"], _RawHold)), _dt(result["now"])

    async def begin_payment(self, event_id: int, hold_id: str, buyer: str, gateway: str,
                            method: str) -> tuple[OrderDraft, str, Hold]:
        """Record a new payment attempt (refused while another is under way); its reference."""
        current = await self.draft(event_id, hold_id)
        if current is None:
            raise OrderRefused(_REFUSALS["no_draft"], code="no_draft")
        reference = new_reference(current.order_number)
        attempt = {"reference": reference, "gateway": gateway, "method": method}
        await self.client.set(self.keys.order(current.order_number), f"{event_id}:{hold_id}", ex=self.ttl)
        result = await self._run("begin_payment", event_id, hold_id, hold_id, buyer,
                                 msgspec.json.encode(attempt), STARTING_STALE_MS)
        return (_draft(event_id, result["draft"]), reference,
                _hold(event_id, msgspec.convert(result["hold"], _RawHold)))

    async def extend_hold(self, event_id: int, hold_id: str, buyer: str, at_least_seconds: int,
                          longest_seconds: int) -> datetime:
        """Once per hold: make it live at least `at_least_seconds` more, never past
        `longest_seconds` after it was made. Returns its expiry."""
        result = await self._run("extend", event_id, None, hold_id, buyer, at_least_seconds * 1000,
                                 longest_seconds * 1000)
        return _dt(result["expires"])

    async def record_payment(self, event_id: int, hold_id: str, reference: str, state: str, *,
                             gateway_ref: str | None = None, action: NextAction | None = None,
                             reason: str | None = None, order_status: str | None = None
                             ) -> OrderDraft:
        update = {"state": state, "gateway_ref": gateway_ref, "reason": reason,
                  "action": msgspec.to_builtins(action) if action else None,
                  "order_status": order_status}
        result = await self._run("payment_update", event_id, hold_id, reference,
                                 msgspec.json.encode({k: v for k, v in update.items() if v is not None}))
        return _draft(event_id, result["draft"])

    async def cancel(self, event_id: int, hold_id: str, buyer: str) -> bool:
        """Give the hold back and mark the draft cancelled (not while paying or once paid)."""
        _own_event(event_id, hold_id)
        result = await self._run("cancel_order", event_id, hold_id, hold_id, buyer)
        return bool(result["released"])

    async def draft(self, event_id: int, hold_id: str) -> OrderDraft | None:
        raw = await self.client.get(self._draft_key(event_id, hold_id)[0])
        return _draft(event_id, msgspec.json.decode(raw)) if raw else None

    async def find(self, order_number: str) -> OrderDraft | None:
        """The draft of an order number, or None."""
        if len(order_number) > 64 or not order_number.startswith("ORD-"):
            return None
        where = await self.client.get(self.keys.order(order_number))
        if where is None:
            return None
        event_id, _, hold_id = where.decode().partition(":")
        draft = await self.draft(int(event_id), hold_id)
        if draft is None or draft.order_number != order_number:
            return None
        return draft

    async def get(self, order_number: str) -> OrderDraft:
        draft = await self.find(order_number)
        if draft is None:
            raise NotFound(f"no order {order_number}", code="unknown_order")
        return draft
