"""Checkout, payment and order JSON routes: from a hold to a paid order.

    POST /api/holds/{hold_id}/checkout      attendees, billing, terms -> the order draft
    POST /api/orders/{number}/payments      pay with a gateway and method -> what to do next
    GET  /api/orders/{number}               the order (owner, or its signed link `?t=`)
    POST /api/orders/{number}/cancel        give the hold back before paying

Nothing here waits on Postgres: drafts live in Redis beside their hold (engine/orders.py).
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from aiohttp import web

from engine.inventory import HoldLine, HoldSeat
from engine.orders import Attendee, Billing, OrderDraft, PaymentAttempt
from engine.payments.base import NextAction
from storefront.api import Api
from storefront.appkeys import INVENTORY, ORDERS
from storefront.buy import flow
from storefront.buy.access import check_access, order_link
from storefront.buy.flow import CheckoutIn, PayIn

__all__ = ["CheckoutIn", "OrderOut", "PayIn", "api", "order_out"]

api = Api()
TAG = "orders"
ORDER = r"/api/orders/{number:ORD-[A-Za-z0-9-]{1,60}}"


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


@api.post(r"/api/holds/{hold_id}/checkout", body=CheckoutIn, response=OrderOut, tag=TAG,
          summary="Attendees and billing for a live hold: the order draft, with its amounts",
          errors=(400, 404, 409, 415, 422))
async def checkout(request: web.Request, body: CheckoutIn) -> OrderOut:
    return await order_out(request, await flow.check_out(request, request.match_info["hold_id"], body))


@api.post(ORDER + "/payments", body=PayIn, response=OrderOut, status=201, tag=TAG,
          summary="Pay for an order: starts one attempt with a gateway (never two at once)",
          errors=(400, 404, 409, 415, 422))
async def pay(request: web.Request, body: PayIn) -> OrderOut:
    number = request.match_info["number"]
    draft = check_access(request, await request.app[ORDERS].find(number), number)
    return await order_out(request, await flow.start_payment(request, draft, body))


@api.get(ORDER, response=OrderOut, tag=TAG,
         summary="An order: its items, amounts, attendees and payments (owner or signed link); "
                 "`verify=1` asks the gateway about a payment under way", errors=(404,))
async def get_order(request: web.Request) -> OrderOut:
    number = request.match_info["number"]
    draft = check_access(request, await request.app[ORDERS].find(number), number)
    if request.query.get("verify") == "1":
        draft = await flow.refreshed(request, draft)
    return await order_out(request, draft)


@api.post(ORDER + "/cancel", tag=TAG, summary="Cancel an order before paying: the hold goes back",
          errors=(404, 409))
async def cancel_order(request: web.Request) -> None:
    number = request.match_info["number"]
    draft = check_access(request, await request.app[ORDERS].find(number), number)
    await flow.cancel(request, draft)
