"""One interface for every payment gateway.

A gateway takes a payment for an order in one of three shapes, and the interface fits all three:
- a hosted payment page: `create_payment` answers `NextAction(kind="redirect", url=...)`; the
  buyer pays there and is sent back to `return_url` (Flutterwave Standard, the sandbox);
- a card intent confirmed in the browser, with a 3-D Secure step when the bank asks for it:
  `NextAction(kind="confirm_card", client_secret=..., publishable_key=...)` (Stripe);
- a mobile-money push whose result arrives later by callback: `NextAction(kind="await_push",
  message=...)` (M-Pesa STK push, Airtel Money, TNM Mpamba through Flutterwave).
Whatever the shape, the outcome reaches Kwika as a signed webhook (`parse_webhook`), and can be
asked for at any time (`fetch_status`) when a webhook is late or lost. Amounts are integers in
minor units; each adapter converts at its own edge. `reference` is ours and unique per attempt
(Flutterwave's tx_ref, Stripe's metadata, M-Pesa's AccountReference); `gateway_ref` is theirs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Protocol

import msgspec

Method = Literal["card", "mobile_money", "bank_transfer", "ussd"]
PaymentState = Literal["pending", "succeeded", "failed"]
METHODS: tuple[Method, ...] = ("card", "mobile_money", "bank_transfer", "ussd")


class GatewayError(Exception):
    """The gateway refused or could not be reached; `retryable` when trying again may work."""

    def __init__(self, message: str, *, retryable: bool = False, code: str = "gateway_error"):
        super().__init__(message)
        self.message, self.retryable, self.code = message, retryable, code


class BadSignature(Exception):
    """A webhook whose signature is missing, wrong or stale: answered 401, never processed."""


class MalformedWebhook(Exception):
    """A signed webhook whose body is not what the gateway documents: answered 400."""


class Customer(msgspec.Struct, kw_only=True):
    name: str
    email: str
    phone: str | None = None


class PaymentRequest(msgspec.Struct, kw_only=True):
    reference: str             # ours, unique per attempt: "<order number>-<attempt>"
    order_number: str
    event_id: int
    amount: int                # minor units
    currency: str
    method: Method
    customer: Customer
    return_url: str            # where a hosted page sends the buyer back
    description: str
    network: str | None = None  # mobile money: mpesa | airtel | tnm


class NextAction(msgspec.Struct, kw_only=True):
    """What the buyer does next to pay."""

    kind: Literal["redirect", "confirm_card", "await_push"]
    url: str | None = None
    client_secret: str | None = None
    publishable_key: str | None = None
    message: str | None = None


class PaymentStart(msgspec.Struct, kw_only=True):
    gateway_ref: str
    action: NextAction


class PaymentStatus(msgspec.Struct, kw_only=True):
    reference: str
    gateway_ref: str
    state: PaymentState
    amount: int
    currency: str
    method: str | None = None
    reason: str | None = None  # why it failed, in the gateway's words
    refunded: int = 0  # minor units given back so far (fetch_status; webhooks may leave it 0)


class WebhookEvent(msgspec.Struct, kw_only=True):
    gateway: str
    event_id: str              # unique per gateway: the key that makes processing exactly-once
    status: PaymentStatus
    # set when the event reports a refund (the payment's own state is then in `status`): a
    # refund notice must never be read as a second "payment succeeded"
    refund: Refund | None = None


class Refund(msgspec.Struct, kw_only=True):
    gateway_ref: str
    refund_ref: str
    amount: int
    state: Literal["pending", "succeeded", "failed"]


class Gateway(Protocol):
    """A payment gateway adapter (engine/payments/<name>.py)."""

    name: str
    methods: frozenset[str]

    async def create_payment(self, request: PaymentRequest) -> PaymentStart:
        """Start a payment; raises GatewayError when the gateway refuses."""

    async def fetch_status(self, reference: str, gateway_ref: str) -> PaymentStatus:
        """Ask the gateway where a payment stands (a late or lost webhook)."""

    def parse_webhook(self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str],
                      now: float) -> WebhookEvent:
        """Verify a webhook (constant-time, within the gateway's tolerance of `now`) and read it;
        BadSignature or MalformedWebhook otherwise. No I/O."""

    async def refund(self, gateway_ref: str, amount: int, reason: str) -> Refund:
        """Give money back (a late payment whose tickets are gone, a cancelled order)."""
