"""The sandbox's rules, as pure functions: what each test card and phone number does, how a
payment changes, and which webhook events a change makes. No I/O; time is an argument."""

from __future__ import annotations

import re
import secrets
from typing import Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

import msgspec

from engine.payments.base import Method, PaymentState
from engine.payments.sandbox import (
    EVENT_FOR_STATE,
    Event,
    EventData,
    Network,
    Payment,
    WireCustomer,
    WireNextAction,
    WireRefund,
)

# stage: what the payment waits for. open: the buyer, on the hosted page; challenge: the buyer,
# on the 3-D Secure page; processing: the sandbox "seeing" a transfer; pushed: the phone
Stage = Literal["open", "challenge", "processing", "pushed", "done"]
Outcome = Literal["succeeded", "declined", "insufficient_funds", "challenge"]


class Card(msgspec.Struct, frozen=True):
    number: str
    outcome: Outcome
    label: str


TEST_CARDS: tuple[Card, ...] = (
    Card("4242424242424242", "succeeded", "Succeeds"),
    Card("4000000000000002", "declined", "Declined"),
    Card("4000000000009995", "insufficient_funds", "Declined: insufficient funds"),
    Card("4000000000003220", "challenge", "Asks for 3-D Secure, then as you choose"),
)
_BY_NUMBER = {card.number: card for card in TEST_CARDS}
REASONS = {
    "declined": "the card was declined",
    "insufficient_funds": "insufficient funds",
    "authentication_failed": "3-D Secure authentication failed",
    "customer_declined": "the customer declined",
    "timed_out": "timed out",
    "cancelled": "the customer cancelled",
}
_EXPIRY = re.compile(r"^(0[1-9]|1[0-2])\s*/\s*([0-9]{2})$")
_CVC = re.compile(r"^[0-9]{3,4}$")


class SandboxPayment(msgspec.Struct, kw_only=True):
    """One payment as the sandbox keeps it (JSON in Redis under Keys.sandbox_payment)."""

    id: str
    reference: str
    amount: int
    currency: str
    method: Method
    customer: WireCustomer
    return_url: str
    description: str
    network: Network | None = None
    metadata: dict[str, str | int] = {}
    status: PaymentState = "pending"
    stage: Stage = "open"
    failure_reason: str | None = None
    created: int
    page_url: str
    webhook_url: str
    due_ms: int | None = None  # when its timer fires (a push answered, a transfer seen)
    refunds: list[WireRefund] = []
    held: list[Event] = []  # reorder mode: events kept back until the payment is final

    @property
    def final(self) -> bool:
        return self.status != "pending"

    @property
    def refunded(self) -> int:
        return sum(r.amount for r in self.refunds)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def card_check(number: str, expiry: str, cvc: str, now_year: int, now_month: int
               ) -> tuple[Card | None, dict[str, str]]:
    """The test card a form names, or what is wrong with the form (field -> words)."""
    errors: dict[str, str] = {}
    digits = re.sub(r"[\s-]", "", number)
    card = _BY_NUMBER.get(digits)
    if not digits:
        errors["card_number"] = "Enter a card number."
    elif card is None:
        errors["card_number"] = "Use one of the test cards listed: this sandbox moves no money."
    match = _EXPIRY.match(expiry.strip())
    if not match:
        errors["expiry"] = "Enter the expiry as MM/YY."
    elif (2000 + int(match[2]), int(match[1])) < (now_year, now_month):
        errors["expiry"] = "This card has expired: any future date works."
    if not _CVC.match(cvc.strip()):
        errors["cvc"] = "Enter the 3 or 4 digits on the back (any will do)."
    return (card if not errors else None), errors


def push_outcome(phone: str | None) -> Literal["approve", "decline", "ignore"]:
    """What the buyer's phone does with a push: ending 0000 declines, 1111 never answers."""
    digits = phone or ""
    if digits.endswith("0000"):
        return "decline"
    if digits.endswith("1111"):
        return "ignore"
    return "approve"


def push_due(phone: str | None, now_ms: int, settle_ms: int, timeout_ms: int) -> int:
    return now_ms + (timeout_ms if push_outcome(phone) == "ignore" else settle_ms)


def succeed(p: SandboxPayment) -> SandboxPayment:
    return msgspec.structs.replace(p, status="succeeded", stage="done", due_ms=None)


def fail(p: SandboxPayment, reason: str) -> SandboxPayment:
    return msgspec.structs.replace(p, status="failed", stage="done", due_ms=None,
                                   failure_reason=REASONS[reason])


def timer_fired(p: SandboxPayment) -> SandboxPayment | None:
    """The payment after its timer fired; None when there is nothing to do any more."""
    if p.final:
        return None
    if p.stage == "pushed":
        outcome = push_outcome(p.customer.phone)
        return (succeed(p) if outcome == "approve"
                else fail(p, "customer_declined" if outcome == "decline" else "timed_out"))
    if p.stage == "processing":
        return succeed(p)
    return None


def events_between(old: SandboxPayment | None, new: SandboxPayment, now: int) -> list[Event]:
    """The webhook events a change makes: one per state entered, one per refund added."""
    events: list[Event] = []
    if old is None or old.status != new.status:
        events.append(_event(EVENT_FOR_STATE[new.status], new, now))
    known = {r.id for r in old.refunds} if old is not None else set()
    events.extend(_event("refund.succeeded", new, now, refund)
                  for refund in new.refunds if refund.id not in known)
    return events


def _event(kind, p: SandboxPayment, now: int, refund: WireRefund | None = None) -> Event:
    return Event(id=new_id("evt"), type=kind, created=now, data=EventData(
        id=p.id, reference=p.reference, amount=p.amount, currency=p.currency, status=p.status,
        method=p.method, failure_reason=p.failure_reason, refund=refund))


def as_payment(p: SandboxPayment, *, with_action: bool = False) -> Payment:
    """The API's view of a payment."""
    action = None
    if with_action:
        if p.method == "mobile_money":
            action = WireNextAction(type="await_push", url=p.page_url, message=(
                f"Approve the payment on your phone ({p.customer.phone}): "
                "enter your PIN when asked."))
        else:
            action = WireNextAction(type="redirect", url=p.page_url)
    return Payment(id=p.id, reference=p.reference, amount=p.amount, currency=p.currency,
                   method=p.method, status=p.status, failure_reason=p.failure_reason,
                   created=p.created, refunded=p.refunded, refunds=p.refunds,
                   next_action=action, metadata=p.metadata)


def return_link(p: SandboxPayment) -> str:
    """`return_url` with `reference` and `status` appended, as the hosted page sends the buyer."""
    parts = urlsplit(p.return_url)
    extra = urlencode({"reference": p.reference, "status": p.status})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))
