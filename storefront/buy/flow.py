"""The steps from a hold to a paid order, shared by the JSON routes (storefront/buy/api.py) and
the pages (storefront/buy/pages.py), so the two can never drift apart:

    check_out(request, hold_id, body)   attendees, billing, terms -> the order draft
    start_payment(request, draft, body) one payment attempt with a gateway (never two at once)
    cancel(request, draft)              give the hold back before paying

Each raises the engine's domain errors (`Invalid`, `OrderRefused`, `NotFound`, ...); the JSON
routes let the error middleware answer them, the pages say them in words.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from aiohttp import web
from msgspec import Meta

from engine.errors import Invalid, NotFound
from engine.inventory import event_of_hold
from engine.orders import Attendee, Billing, OrderDraft, Phone
from engine.payments.base import Method
from storefront.appkeys import EVENT_CACHE, INVENTORY, ORDERS, PAYMENTS
from storefront.buy.access import order_link
from storefront.buyer import current_buyer
from storefront.gateways import payment_gateways
from storefront.room.service import basket_gate
from storefront.urls import public_url

Network = Literal["mpesa", "airtel", "tnm"]


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
    network: Network | None = None  # mobile money
    phone: Phone | None = None  # mobile money: the phone that approves (default: billing phone)


def buyer_of(request: web.Request) -> str:
    """The caller's buyer key; a visitor with none has no holds and no orders to act on."""
    buyer = current_buyer(request)
    if buyer is None:
        raise NotFound("this hold does not exist or has expired", code="unknown_hold")
    return buyer


def check_pay(body: PayIn, billing_phone: str | None) -> None:
    """What a payment needs beyond its shape (checked before anything is written)."""
    if body.method == "mobile_money":
        if not (body.phone or billing_phone):
            raise Invalid("give the phone number that approves the payment",
                          fields={"phone": "required"})
        if body.network is None:
            raise Invalid("choose the mobile money network", fields={"network": "required"})


async def check_out(request: web.Request, hold_id: str, body: CheckoutIn) -> OrderDraft:
    """Write (or rewrite, while nothing is being paid) the order draft of the caller's hold."""
    event_id = event_of_hold(hold_id)
    if event_id is None:
        raise NotFound(f"no hold {hold_id!r}", code="unknown_hold")
    if not body.accept_terms:
        raise Invalid("accept the terms to continue", fields={"accept_terms": "must be accepted"})
    buyer = buyer_of(request)
    facts = await request.app[EVENT_CACHE].get(event_id)
    await basket_gate(request, facts, buyer, hold_id)  # the waiting room's pass, when it is on
    attendees = body.attendees
    if body.use_buyer_details:
        hold, _ = await request.app[INVENTORY].find_hold(event_id, hold_id=hold_id)
        tickets = sum(i.quantity for i in hold.items) + len(hold.seats) if hold else 0
        attendees = [Attendee(name=body.billing.name, email=body.billing.email,
                              phone=body.billing.phone)] * tickets
    draft, _, _ = await request.app[ORDERS].checkout(
        event_id, hold_id, buyer, attendees, body.billing, facts.service_fee, facts.currency)
    return draft


def return_url(request: web.Request, number: str) -> str:
    """Where a hosted payment page sends the buyer back: the order's payment status page, by its
    signed link (a guest may come back in another browser)."""
    return f"{public_url(request)}{order_link(request, number).replace('?', '/payment?', 1)}"


async def start_payment(request: web.Request, draft: OrderDraft, body: PayIn) -> OrderDraft:
    """Begin one payment attempt for `draft` (refused `payment_pending` while another is under
    way); the draft, whose last attempt carries what the buyer does next."""
    buyer = buyer_of(request)
    payment_gateways(request)
    check_pay(body, draft.billing.phone)
    if draft.status == "awaiting_payment":  # the last attempt may have ended without telling us
        draft = await request.app[PAYMENTS].refresh(draft)
    facts = await request.app[EVENT_CACHE].get(draft.event_id)
    draft, _ = await request.app[PAYMENTS].start(
        draft.event_id, draft.hold_id, buyer, body.gateway, body.method,
        return_url=return_url(request, draft.order_number),
        description=facts.title or f"Tickets, order {draft.order_number}",
        network=body.network, phone=body.phone)
    return draft


async def refreshed(request: web.Request, draft: OrderDraft) -> OrderDraft:
    """The draft after asking the gateway about an attempt under way (a late webhook)."""
    if draft.status != "awaiting_payment":
        return draft
    payment_gateways(request)
    return await request.app[PAYMENTS].refresh(draft)


async def cancel(request: web.Request, draft: OrderDraft) -> bool:
    """Give the order's hold back and mark it cancelled (not while paying, not once paid)."""
    return await request.app[ORDERS].cancel(draft.event_id, draft.hold_id, buyer_of(request))
