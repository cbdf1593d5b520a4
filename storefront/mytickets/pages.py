"""My tickets, server-rendered (no script needed):

    GET  /my/tickets                      the signed-in buyer's tickets by event, upcoming or past
                                          (`?show=past`); guests are sent to log in
    GET  /my/tickets/{number}             one ticket in large, with "Give this ticket"
    POST /my/tickets/{number}/transfer    give it to someone else (owner only; form token)
    GET  /orders/{number}/tickets         an order's tickets: its buyer, or its signed link `?t=`
                                          (a guest's way to the QR codes)
    GET  /orders/{number}/tickets.pdf     the order's PDF tickets (buyer or signed link)
    POST /orders/{number}/resend          "Send my tickets again" (buyer or signed link)

Every form is answered with a redirect (post/redirect/get), so a refresh never posts again; a
refused form is shown again with its words and status.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from itertools import groupby
from urllib.parse import urlencode

from aiohttp import web

from engine.errors import DomainError, NotFound, RateLimited
from engine.orders import Attendee
from engine.tickets.record import load_order, load_orders_of, order_of_ticket
from storefront.api import convert
from storefront.appkeys import DB, ORDERS, USER
from storefront.buy.access import check_access
from storefront.buyer import current_buyer
from storefront.errors import ApiError, status_for
from storefront.forms import read_form
from storefront.mytickets.tickets import (
    HOLDERS,
    PDFS,
    Card,
    cards,
    has_link,
    is_owner,
    order_for,
    order_pdf,
    when_words,
    zone_words,
)
from storefront.render import render
from storefront.wording import field_problem, sentence

routes = web.RouteTableDef()
ORDER = r"/orders/{number:ORD-[A-Za-z0-9-]{1,60}}"
TICKET = r"/my/tickets/{ticket:TKT-[0-9]{1,19}-[0-9A-Z]{4,24}}"
NO_STORE = {"Cache-Control": "no-store"}
_BACK = re.compile(r"/my/tickets(/TKT-[0-9]{1,19}-[0-9A-Z]{4,24})?|/orders/ORD-[A-Za-z0-9-]{1,60}/tickets")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")


WORDS = {"when_words": when_words, "zone_words": zone_words}


def _login(request: web.Request) -> None:
    if request.get(USER) is None:
        raise web.HTTPSeeOther("/login?" + urlencode({"next": request.path_qs}))


def _groups(found: list[Card]) -> list[tuple[object, list[Card]]]:
    """Cards by event, in the order given (soonest first)."""
    return [(event, list(items)) for event, items in
            groupby(found, key=lambda c: c.order.event)]


# --- the list ---------------------------------------------------------------------------------
@routes.get("/my/tickets")
async def my_tickets(request: web.Request) -> web.Response:
    _login(request)
    show = "past" if request.query.get("show") == "past" else "upcoming"
    orders = await load_orders_of(request.app[DB], current_buyer(request) or "")
    now = datetime.now(UTC)
    upcoming = [o for o in orders if o.event.ends_at > now]
    past = sorted((o for o in orders if o.event.ends_at <= now),
                  key=lambda o: o.event.starts_at, reverse=True)
    chosen = past if show == "past" else upcoming
    found = await cards(request, chosen, now=now)
    return render(request, "mytickets/list.html", {
        "show": show, "groups": _groups(found), "counts": {
            "upcoming": sum(len(o.tickets) for o in upcoming),
            "past": sum(len(o.tickets) for o in past)},
        "sent": _sent(request, chosen), **WORDS}, headers=NO_STORE)


def _sent(request: web.Request, orders) -> str | None:
    """The address a resend just went to (`?sent=<order number>` after the redirect)."""
    number = request.query.get("sent")
    order = next((o for o in orders if o.number == number), None)
    return order.email if order else None


# --- one ticket -------------------------------------------------------------------------------
async def _ticket_card(request: web.Request, number: str) -> Card:
    _login(request)
    pool = request.app[DB]
    found = await order_of_ticket(pool, number, current_buyer(request) or "")
    order = await load_order(pool, found) if found else None
    if order is None:
        raise NotFound(f"no ticket {number}", code="unknown_ticket")
    return next(c for c in await cards(request, [order]) if c.ticket.number == number)


async def _ticket_page(request: web.Request, card: Card, *, values: dict[str, str] | None = None,
                       errors: dict[str, str] | None = None, error: str | None = None,
                       status: int = 200) -> web.Response:
    return render(request, "mytickets/ticket.html", {
        "c": card, "f": values or {}, "errors": errors or {}, "error": error,
        "form_token": secrets.token_urlsafe(18), "done": request.query.get("done"),
        "sent": card.order.email if request.query.get("sent") == card.order.number else None,
        **WORDS}, status=status, headers=NO_STORE)


@routes.get(TICKET)
async def ticket_page(request: web.Request) -> web.Response:
    return await _ticket_page(request, await _ticket_card(request, request.match_info["ticket"]))


@routes.post(TICKET + "/transfer")
async def transfer(request: web.Request) -> web.Response:
    number = request.match_info["ticket"]
    card = await _ticket_card(request, number)
    form = await read_form(request)
    values = {k: form.get(k, "").strip() for k in ("name", "email", "confirm", "request")}
    errors: dict[str, str] = {}
    try:
        person = convert({"name": values["name"], "email": values["email"]}, Attendee)
    except ApiError as exc:
        errors = {k: field_problem(k, v) for k, v in exc.fields.items()}
        person = None
    if not values["confirm"]:
        errors["confirm"] = "Tick the box to confirm: your own code for this ticket stops working."
    if not _TOKEN.fullmatch(values["request"]):
        errors.setdefault("confirm", "The form is out of date. Please fill it in again.")
    if errors or person is None:
        top = "Please correct the field marked below." if len(errors) == 1 else \
            "Please correct the fields marked below."
        return await _ticket_page(request, card, values=values, errors=errors, error=top,
                                  status=422)
    try:
        await request.app[HOLDERS].transfer(number, owner=current_buyer(request) or "",
                                            name=person.name, email=person.email,
                                            request=values["request"])
    except DomainError as exc:
        if isinstance(exc, NotFound):
            raise
        return await _ticket_page(request, card, values=values, error=sentence(exc.message),
                                  status=status_for(exc))
    await request.app[PDFS].remove(card.order.number)  # its stored PDF holds the old code
    raise web.HTTPSeeOther(f"/my/tickets/{number}?done=transferred")


# --- an order's tickets (the signed link's way) ----------------------------------------------
@routes.get(ORDER + "/tickets")
async def order_tickets(request: web.Request) -> web.Response:
    number = request.match_info["number"]
    order = await load_order(request.app[DB], number)
    if order is None:
        return await _not_written_yet(request, number)
    if not (is_owner(request, order) or has_link(request, number)):
        raise NotFound(f"no order {number}", code="unknown_order")
    found = await cards(request, [order])
    token = request.query.get("t")
    return render(request, "mytickets/order.html", {
        "order": order, "cards": found, "t": token, "owner": is_owner(request, order),
        "sent": order.email if request.query.get("sent") == order.number else None,
        "error": None, **WORDS}, headers=NO_STORE)


async def _not_written_yet(request: web.Request, number: str) -> web.Response:
    """Paid moments ago: the order is in Redis (the buying pages') but the worker has not
    written it yet. The page refreshes itself until it has; anyone else gets the 404."""
    draft = check_access(request, await request.app[ORDERS].find(number), number)
    if draft.status != "paid":
        raise NotFound(f"no tickets for order {number} (not paid)", code="unknown_order")
    return render(request, "mytickets/issuing.html", {"number": number}, headers=NO_STORE)


@routes.get(ORDER + "/tickets.pdf")
async def order_tickets_pdf(request: web.Request) -> web.StreamResponse:
    order = await order_for(request, request.match_info["number"])
    if not order.live_tickets:
        raise NotFound("this order has no tickets to download", code="no_tickets")
    pdf = await order_pdf(request, order)
    return web.Response(body=pdf, content_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="tickets-{order.number}.pdf"',
        **NO_STORE})


@routes.post(ORDER + "/resend")
async def resend(request: web.Request) -> web.Response:
    order = await order_for(request, request.match_info["number"])
    back = (await read_form(request)).get("back", "")
    if not _BACK.fullmatch(back):
        back = f"/orders/{order.number}/tickets"
    query = {"t": request.query["t"]} if request.query.get("t") else {}
    if not order.live_tickets:
        raise NotFound("this order has no tickets to send", code="no_tickets")
    try:
        await request.app[HOLDERS].resend(order.number, order.event.id)
    except RateLimited as exc:
        return render(request, "mytickets/order.html", {
            "order": order, "cards": await cards(request, [order]), "t": request.query.get("t"),
            "owner": is_owner(request, order), "sent": None,
            "error": sentence(exc.message), **WORDS},
            status=429, headers={"Retry-After": str(exc.retry_after), **NO_STORE})
    raise web.HTTPSeeOther(f"{back}?{urlencode({**query, 'sent': order.number})}")
