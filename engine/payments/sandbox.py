"""The sandbox gateway: its wire format (version 1), and the adapter Kwika talks to it with.

The sandbox is a pretend gateway that Kwika serves itself (storefront/sandbox/), so that the same
code paths as with a real gateway run with no keys: an HTTP API, a hosted page with a redirect
back, signed webhooks, status lookups and refunds. Its API, under the sandbox's base URL
(`KWIKA_SANDBOX_URL`, e.g. `http://127.0.0.1:8080/sandbox`), with
`Authorization: Bearer <sandbox secret key>`:

- `POST /api/v1/payments` with a `CreatePayment` -> 201 `Payment` (with `next_action`)
- `GET /api/v1/payments/{id}` or `GET /api/v1/payments?reference=...` -> 200 `Payment`
- `POST /api/v1/payments/{id}/refunds` with a `RefundRequest` -> 201 `WireRefund`
- errors: `{"error": code, "message": text, "fields": {field: problem}}` with 401 (bad key),
  404 (unknown payment), 409 (reference already used, nothing left to refund), 422 (malformed).

Webhooks: for every change of a payment the sandbox POSTs an `Event` as JSON to the webhook URL
with a `Kwika-Signature` header (engine/payments/signing.py). An event keeps its `id` across
retries and duplicates. Amounts are integers in minor units everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal
from urllib.parse import quote

import aiohttp
import msgspec

from engine.payments import signing
from engine.payments.base import (
    METHODS,
    BadSignature,
    GatewayError,
    MalformedWebhook,
    Method,
    NextAction,
    PaymentRequest,
    PaymentStart,
    PaymentState,
    PaymentStatus,
    Refund,
    WebhookEvent,
)

NAME = "sandbox"
Network = Literal["mpesa", "airtel", "tnm"]
EventType = Literal["payment.pending", "payment.succeeded", "payment.failed", "refund.succeeded"]
EVENT_FOR_STATE: dict[str, EventType] = {
    "pending": "payment.pending", "succeeded": "payment.succeeded", "failed": "payment.failed"}

Reference = Annotated[str, msgspec.Meta(min_length=1, max_length=100,
                                        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]
Phone = Annotated[str, msgspec.Meta(pattern=r"^\+?[0-9]{7,15}$")]
Text = Annotated[str, msgspec.Meta(max_length=500)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Email = Annotated[str, msgspec.Meta(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
Url = Annotated[str, msgspec.Meta(max_length=2000, pattern=r"^https?://[^\s]+$")]
Amount = Annotated[int, msgspec.Meta(gt=0, le=10**13)]


class WireCustomer(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name
    email: Email
    phone: Phone | None = None


class CreatePayment(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The body of `POST /api/v1/payments`."""

    reference: Reference  # the merchant's, used once
    amount: Amount
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
    method: Method
    customer: WireCustomer
    return_url: Url  # the hosted page sends the buyer back here with ?reference=&status=
    description: Text = ""
    network: Network | None = None  # mobile money only, where it is required
    metadata: dict[Annotated[str, msgspec.Meta(max_length=40)], str | int] = {}


class WireNextAction(msgspec.Struct, kw_only=True):
    type: Literal["redirect", "await_push"]
    url: str  # the hosted page (for a push: where the buyer can watch it)
    message: str | None = None


class WireRefund(msgspec.Struct, kw_only=True):
    id: str
    payment_id: str
    amount: int
    status: Literal["succeeded"]
    reason: str
    created: int


class Payment(msgspec.Struct, kw_only=True):
    """A payment as the API shows it."""

    id: str
    reference: str
    amount: int
    currency: str
    method: Method
    status: PaymentState
    failure_reason: str | None = None
    created: int
    refunded: int = 0
    refunds: list[WireRefund] = []
    next_action: WireNextAction | None = None
    metadata: dict[str, str | int] = {}


class RefundRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The body of `POST /api/v1/payments/{id}/refunds`; no amount: what is left."""

    amount: Amount | None = None
    reason: Annotated[str, msgspec.Meta(max_length=200)] = ""


class EventData(msgspec.Struct, kw_only=True):
    id: str  # the payment
    reference: str
    amount: int
    currency: str
    status: PaymentState
    method: Method
    failure_reason: str | None = None
    refund: WireRefund | None = None  # refund.succeeded only


class Event(msgspec.Struct, kw_only=True):
    """A webhook event: `payment.<status>` for each state a payment enters, `refund.succeeded`
    for each refund (its payment's state in `data.status`, the refund in `data.refund`).
    Readers ignore fields they do not know, so the format can grow."""

    id: str  # evt_..., the same in every delivery of this event
    type: EventType
    created: int  # unix seconds when the change happened
    data: EventData


class WireError(msgspec.Struct):
    error: str
    message: str
    fields: dict[str, str] = {}


_decode_event = msgspec.json.Decoder(Event).decode


def read_event(body: bytes) -> Event:
    """A webhook body as an `Event`, checked for consistency; MalformedWebhook otherwise."""
    try:
        event = _decode_event(body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise MalformedWebhook(f"not a sandbox event: {exc}") from None
    if event.type == "refund.succeeded":
        if event.data.refund is None:
            raise MalformedWebhook("a refund event without its refund")
    elif event.data.refund is not None or EVENT_FOR_STATE[event.data.status] != event.type:
        raise MalformedWebhook(f"a {event.type} event with status {event.data.status}")
    return event


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # a plain dict: compare names without case, as HTTP does
        wanted = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == wanted), None)
    return value


class SandboxGateway:
    """`Gateway` over the sandbox's HTTP API. The `session` belongs to the caller, who closes it.

    A 5xx, a 429, a timeout or a connection failure raises `GatewayError(retryable=True)`; any
    other 4xx `GatewayError(retryable=False)` with the sandbox's code and message."""

    name = NAME
    methods: frozenset[str] = frozenset(METHODS)

    def __init__(self, session: aiohttp.ClientSession, base_url: str, api_key: str,
                 webhook_secrets: Sequence[str], *, timeout: float = 10.0,
                 tolerance: float = signing.TOLERANCE_SECONDS):
        self._session = session
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self._secrets = tuple(webhook_secrets)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._tolerance = tolerance

    def __repr__(self) -> str:  # never the key
        return f"SandboxGateway({self.base_url!r})"

    async def create_payment(self, request: PaymentRequest) -> PaymentStart:
        body = CreatePayment(
            reference=request.reference, amount=request.amount, currency=request.currency,
            method=request.method, return_url=request.return_url,
            description=request.description, network=request.network,  # type: ignore[arg-type]
            customer=WireCustomer(name=request.customer.name, email=request.customer.email,
                                  phone=request.customer.phone),
            metadata={"order_number": request.order_number, "event_id": request.event_id})
        payment = await self._call("POST", "/api/v1/payments", Payment, body=body)
        if payment.next_action is None:
            raise GatewayError("the sandbox answered without a next action", code="bad_response")
        action = payment.next_action
        kind = "redirect" if action.type == "redirect" else "await_push"
        return PaymentStart(gateway_ref=payment.id,
                            action=NextAction(kind=kind, url=action.url, message=action.message))

    async def fetch_status(self, reference: str, gateway_ref: str) -> PaymentStatus:
        """By `gateway_ref`; when it is unknown ("": the create call's answer was lost), by
        `reference`."""
        if gateway_ref:
            payment = await self._call("GET", f"/api/v1/payments/{quote(gateway_ref, safe='')}",
                                       Payment)
        else:
            payment = await self._call("GET", "/api/v1/payments", Payment,
                                       params={"reference": reference})
        if payment.reference != reference:
            raise GatewayError(f"payment {gateway_ref} belongs to another reference",
                               code="reference_mismatch")
        return PaymentStatus(reference=payment.reference, gateway_ref=payment.id,
                             state=payment.status, amount=payment.amount,
                             currency=payment.currency, method=payment.method,
                             reason=payment.failure_reason, refunded=payment.refunded)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str],
                      now: float) -> WebhookEvent:
        header = _header(headers, signing.HEADER)
        if not self._secrets:
            raise BadSignature("no webhook secret is configured")
        signing.verify(header, body, self._secrets, now, self._tolerance)
        event = read_event(body)
        data = event.data
        status = PaymentStatus(reference=data.reference, gateway_ref=data.id, state=data.status,
                               amount=data.amount, currency=data.currency, method=data.method,
                               reason=data.failure_reason)
        refund = None
        if data.refund is not None:
            refund = Refund(gateway_ref=data.id, refund_ref=data.refund.id,
                            amount=data.refund.amount, state=data.refund.status)
        return WebhookEvent(gateway=self.name, event_id=event.id, status=status, refund=refund)

    async def refund(self, gateway_ref: str, amount: int, reason: str) -> Refund:
        done = await self._call("POST", f"/api/v1/payments/{quote(gateway_ref, safe='')}/refunds",
                                WireRefund,
                                body=RefundRequest(amount=amount, reason=reason[:200]))
        return Refund(gateway_ref=done.payment_id, refund_ref=done.id, amount=done.amount,
                      state=done.status)

    async def _call(self, method: str, path: str, answer: type, *, body: Any = None,
                    params: Mapping[str, str] | None = None) -> Any:
        headers = dict(self._headers)
        data = None
        if body is not None:
            data = msgspec.json.encode(body)
            headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(method, self.base_url + path, data=data,
                                             params=params, headers=headers,
                                             timeout=self._timeout) as resp:
                status, raw = resp.status, await resp.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise GatewayError(f"the sandbox gateway could not be reached ({type(exc).__name__})",
                               retryable=True, code="unreachable") from None
        if status >= 400:
            try:
                error = msgspec.json.decode(raw, type=WireError)
                code, message = error.error, error.message
            except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
                code, message = "gateway_error", f"the sandbox answered {status}"
            raise GatewayError(message, retryable=status >= 500 or status == 429, code=code)
        try:
            return msgspec.json.decode(raw, type=answer)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            raise GatewayError(f"the sandbox answered {status} with an unreadable body",
                               code="bad_response") from None
