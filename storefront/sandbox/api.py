"""The sandbox gateway's JSON API (wire format: engine/payments/sandbox.py).

These routes speak for a pretend foreign gateway, not for Kwika: they authenticate with the
sandbox's own bearer key (compared in constant time), skip Kwika's identities and CSRF
(`kwika_own_auth`), and answer every refusal in the documented error shape themselves.
"""

from __future__ import annotations

import functools
import hmac
import time
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from engine.payments.sandbox import CreatePayment, RefundRequest, WireRefund
from storefront.api import json_response
from storefront.appkeys import SETTINGS
from storefront.errors import error_response, validation_error
from storefront.sandbox.appkeys import STORE
from storefront.sandbox.rules import SandboxPayment, as_payment, new_id, push_due
from storefront.sandbox.store import DuplicateReference, now_ms
from storefront.urls import served_url

routes = web.RouteTableDef()
API = "/sandbox/api/v1"


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str,
                 fields: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields or {}


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def sandbox_api(fn: Handler) -> Handler:
    """Check the sandbox key, and answer refusals in the sandbox's error shape."""
    @functools.wraps(fn)
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            _authorize(request)
            return await fn(request)
        except Refused as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            return error_response(exc.status, exc.code, exc.message, exc.fields, headers)

    handler.kwika_own_auth = True  # type: ignore[attr-defined]  # read by the auth middleware
    return handler


def _authorize(request: web.Request) -> None:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    expected = request.app[SETTINGS].sandbox_api_key.encode()
    if (scheme.lower() != "bearer" or not key.isascii()
            or not hmac.compare_digest(key.strip().encode(), expected)):
        raise Refused(401, "unauthenticated", "send Authorization: Bearer <sandbox secret key>")


async def _body(request: web.Request, typ: type):
    raw = await request.read()
    try:
        return msgspec.json.decode(raw, type=typ)
    except msgspec.ValidationError as exc:
        err = validation_error(exc)
        raise Refused(422, "invalid", err.message, err.fields) from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise Refused(422, "malformed_json", "the body must be a JSON object") from None


async def _payment(request: web.Request) -> SandboxPayment:
    payment = await request.app[STORE].get(request.match_info["id"])
    if payment is None:
        raise Refused(404, "not_found", f"no payment {request.match_info['id']}")
    return payment


@routes.post(API + "/payments")
@sandbox_api
async def create_payment(request: web.Request) -> web.Response:
    body: CreatePayment = await _body(request, CreatePayment)
    settings = request.app[SETTINGS]
    if body.method == "mobile_money":
        missing = {f: "required for mobile money" for f, v in
                   (("customer.phone", body.customer.phone), ("network", body.network)) if not v}
        if missing:
            raise Refused(422, "invalid", "mobile money needs the customer's phone and the "
                          "network", missing)
    elif body.network is not None:
        raise Refused(422, "invalid", "network is for mobile money only",
                      {"network": "mobile money only"})
    payment_id = new_id("pay")
    now = now_ms()
    payment = SandboxPayment(
        id=payment_id, reference=body.reference, amount=body.amount, currency=body.currency,
        method=body.method, customer=body.customer, return_url=body.return_url,
        description=body.description, network=body.network, metadata=body.metadata,
        created=int(time.time()),
        # the caller reached us at this address (and proved it holds the key): the buyer will too
        page_url=f"{request.url.origin()}/sandbox/pay/{payment_id}",
        webhook_url=settings.sandbox_webhook_url or f"{served_url(request)}/webhooks/sandbox")
    if body.method == "mobile_money":
        payment = msgspec.structs.replace(payment, stage="pushed", due_ms=push_due(
            body.customer.phone, now, settings.sandbox_settle_ms,
            settings.sandbox_push_timeout_ms))
    try:
        await request.app[STORE].create(payment)
    except DuplicateReference:
        raise Refused(409, "duplicate_reference", f"reference {body.reference!r} was already "
                      "used for a payment", {"reference": "already used"}) from None
    return json_response(as_payment(payment, with_action=True), status=201)


@routes.get(API + "/payments")
@sandbox_api
async def find_payment(request: web.Request) -> web.Response:
    reference = request.query.get("reference", "")
    if not reference:
        raise Refused(422, "invalid", "give ?reference=", {"reference": "required"})
    payment = await request.app[STORE].by_reference(reference)
    if payment is None:
        raise Refused(404, "not_found", f"no payment with reference {reference!r}")
    return json_response(as_payment(payment))


@routes.get(API + "/payments/{id}")
@sandbox_api
async def get_payment(request: web.Request) -> web.Response:
    return json_response(as_payment(await _payment(request)))


@routes.post(API + "/payments/{id}/refunds")
@sandbox_api
async def refund_payment(request: web.Request) -> web.Response:
    body: RefundRequest = await _body(request, RefundRequest)
    payment = await _payment(request)
    made: list[WireRefund] = []

    def step(p: SandboxPayment) -> SandboxPayment:
        if p.status != "succeeded":
            raise Refused(409, "not_refundable", f"a {p.status} payment cannot be refunded")
        left = p.amount - p.refunded
        amount = left if body.amount is None else body.amount
        if amount <= 0 or amount > left:
            raise Refused(409, "not_refundable", f"{left} (minor units) is left to refund",
                          {"amount": f"at most {left}"})
        refund = WireRefund(id=new_id("re"), payment_id=p.id, amount=amount, status="succeeded",
                            reason=body.reason, created=int(time.time()))
        made[:] = [refund]
        return msgspec.structs.replace(p, refunds=[*p.refunds, refund])

    if await request.app[STORE].change(payment.id, step) is None:
        raise Refused(404, "not_found", f"no payment {payment.id}")
    return json_response(made[0], status=201)
