"""Checkout, payment and order JSON routes: from a hold to a paid order.

    POST /api/holds/{hold_id}/checkout      attendees, billing, terms -> the order draft
    POST /api/orders/{number}/payments      pay with a gateway and method -> what to do next
    GET  /api/orders/{number}               the order (owner, or its signed link `?t=`)
    POST /api/orders/{number}/cancel        give the hold back before paying

Nothing here waits on Postgres: drafts live in Redis beside their hold (engine/orders.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from aiohttp import web
from msgspec import Meta

from engine.errors import Invalid, NotFound
from engine.inventory import HoldLine, HoldSeat, event_of_hold
from engine.orders import Attendee, Billing, OrderDraft, PaymentAttempt, Phone
from engine.payments.base import Method, NextAction
from storefront.api import Api
from storefront.appkeys import EVENT_CACHE, INVENTORY, ORDERS, PAYMENTS
from storefront.buy.access import check_access, order_link
from storefront.buyer import current_buyer
from storefront.gateways import payment_gateways
from storefront.urls import public_url

api = Api()
TAG = "orders"
ORDER = r"/api/orders/{number:ORD-[A-Za-z0-9-]{1,60}}"


class CheckoutIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One attendee per ticket, in the hold's order (GA lines first, then seats), or
    `use_buyer_details` to put the billing name and email on every ticket."""

    billing: Billing
    accept_terms: bool
    attendees: Annotated[list[Attendee], Meta(max_length=1000)] = []
    use_buyer_details: bool = False


class PayIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    method: Method
    gateway: Annotated[str, Meta(min_length=1, max_length=30, pattern=r"^[a-z_]+\Z")] = "sandbox"
    network: Literal["mpesa", "airtel", "tnm"] | None = None  # mobile money
    phone: Phone | None = None  # mobile money: the phone that approves (default: billing phone)


class OrderOut(msgspec.Struct, kw_only=True):
    order_number: str
    event_id: int
    hold_id: str
    status: str
    tickets: int
    items: list[HoldLine]
    seats: list[HoldSeat]
    attendees: list[Attendee]
    billing: Billing
    subtotal: int
    fees: int
    total: int
    currency: str
    payments: list[PaymentAttempt]
    next_action: NextAction | None  # of the attempt under way, if any
    hold_expires_at: datetime | None  # None once the hold is gone (paid, expired, cancelled)
    server_time: datetime
    link: str  # the order's signed link (a guest's way back)


async def order_out(request: web.Request, draft: OrderDraft) -> OrderOut:
    hold, now = await request.app[INVENTORY].find_hold(draft.event_id, hold_id=draft.hold_id)
    under_way = next((a for a in reversed(draft.payments) if a.state == "pending"), None)
    return OrderOut(
        order_number=draft.order_number, event_id=draft.event_id, hold_id=draft.hold_id,
        status=draft.status, tickets=draft.tickets, items=draft.items, seats=draft.seats,
        attendees=draft.attendees, billing=draft.billing, subtotal=draft.subtotal, fees=draft.fees,
        total=draft.total, currency=draft.currency, payments=draft.payments,
        next_action=under_way.action if under_way and draft.status == "awaiting_payment" else None,
        hold_expires_at=hold.expires_at if hold else None, server_time=now,
        link=order_link(request, draft.order_number))


def public_base(request: web.Request) -> str:
    return public_url(request)


def _buyer(request: web.Request) -> str:
    buyer = current_buyer(request)
    if buyer is None:
        raise NotFound("this hold does not exist or has expired", code="unknown_hold")
    return buyer


@api.post(r"/api/holds/{hold_id}/checkout", body=CheckoutIn, response=OrderOut, tag=TAG,
          summary="Attendees and billing for a live hold: the order draft, with its amounts",
          errors=(400, 404, 409, 415, 422))
async def checkout(request: web.Request, body: CheckoutIn) -> OrderOut:
    hold_id = request.match_info["hold_id"]
    event_id = event_of_hold(hold_id)
    if event_id is None:
        raise NotFound(f"no hold {hold_id!r}", code="unknown_hold")
    if not body.accept_terms:
        raise Invalid("accept the terms to continue", fields={"accept_terms": "must be accepted"})
    buyer = _buyer(request)
    facts = await request.app[EVENT_CACHE].get(event_id)
    attendees = body.attendees
    if body.use_buyer_details:
        hold, _ = await request.app[INVENTORY].find_hold(event_id, hold_id=hold_id)
        tickets = sum(i.quantity for i in hold.items) + len(hold.seats) if hold else 0
        attendees = [Attendee(name=body.billing.name, email=body.billing.email,
                              phone=body.billing.phone)] * tickets
    draft, _, _ = await request.app[ORDERS].checkout(
        event_id, hold_id, buyer, attendees, body.billing, facts.service_fee, facts.currency)
    return await order_out(request, draft)


@api.post(ORDER + "/payments", body=PayIn, response=OrderOut, status=201, tag=TAG,
          summary="Pay for an order: starts one attempt with a gateway (never two at once)",
          errors=(400, 404, 409, 415, 422))
async def pay(request: web.Request, body: PayIn) -> OrderOut:
    number = request.match_info["number"]
    orders = request.app[ORDERS]
    draft = check_access(request, await orders.find(number), number)
    buyer = _buyer(request)
    payment_gateways(request)
    if body.method == "mobile_money" and not (body.phone or draft.billing.phone):
        raise Invalid("give the phone number that approves the payment", fields={"phone": "required"})
    if draft.status == "awaiting_payment":  # the last attempt may have ended without telling us
        draft = await request.app[PAYMENTS].refresh(draft)
    facts = await request.app[EVENT_CACHE].get(draft.event_id)
    return_url = f"{public_base(request)}{order_link(request, number).replace('?', '/payment?', 1)}"
    draft, _ = await request.app[PAYMENTS].start(
        draft.event_id, draft.hold_id, buyer, body.gateway, body.method, return_url=return_url,
        description=facts.title or f"Tickets, order {number}", network=body.network, phone=body.phone)
    return await order_out(request, draft)


@api.get(ORDER, response=OrderOut, tag=TAG,
         summary="An order: its items, amounts, attendees and payments (owner or signed link); "
                 "`verify=1` asks the gateway about a payment under way", errors=(404,))
async def get_order(request: web.Request) -> OrderOut:
    number = request.match_info["number"]
    draft = check_access(request, await request.app[ORDERS].find(number), number)
    if request.query.get("verify") == "1" and draft.status == "awaiting_payment":
        payment_gateways(request)
        draft = await request.app[PAYMENTS].refresh(draft)
    return await order_out(request, draft)


@api.post(ORDER + "/cancel", tag=TAG, summary="Cancel an order before paying: the hold goes back",
          errors=(404, 409))
async def cancel_order(request: web.Request) -> None:
    number = request.match_info["number"]
    draft = check_access(request, await request.app[ORDERS].find(number), number)
    await request.app[ORDERS].cancel(draft.event_id, draft.hold_id, _buyer(request))
