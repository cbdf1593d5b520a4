"""My tickets as JSON:

    GET  /api/my/tickets                    the caller's tickets by event, upcoming and past
    POST /api/tickets/{number}/transfer     give a ticket to someone else (its buyer only;
                                            `Idempotency-Key` makes a repeat change nothing)
    POST /api/orders/{number}/resend        send an order's tickets again (buyer or `?t=`)
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import msgspec
from aiohttp import web

from engine.orders import Email, PersonName
from engine.tickets.record import load_orders_of
from storefront.api import Api
from storefront.appkeys import DB
from storefront.buyer import current_buyer
from storefront.errors import ApiError
from storefront.mytickets.tickets import HOLDERS, PDFS, Card, cards, order_for

api = Api()
TAG = "my tickets"
_KEY = re.compile(r"[A-Za-z0-9_.:-]{8,64}")


class TicketOut(msgspec.Struct, kw_only=True):
    ticket_number: str
    order_number: str
    status: str  # valid | used | cancelled | refunded | transferred
    generation: int
    payload: str | None  # the signed QR payload; only while the ticket admits its holder
    package: str
    seat: str  # "General admission" or "Section A · Row B · Seat 12"
    seat_id: int | None
    attendee_name: str
    attendee_email: str
    can_transfer: bool
    transfer_refusal: str | None


class EventTicketsOut(msgspec.Struct, kw_only=True):
    event_id: int
    slug: str
    title: str
    starts_at: datetime
    ends_at: datetime
    timezone: str
    venue: str
    place: str
    directions: str  # a Google Maps search for the venue
    status: str
    tickets: list[TicketOut]


class MyTicketsOut(msgspec.Struct, kw_only=True):
    upcoming: list[EventTicketsOut]
    past: list[EventTicketsOut]


class TransferIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: PersonName
    email: Email


class TransferOut(msgspec.Struct, kw_only=True):
    ticket_number: str
    order_number: str
    generation: int
    attendee_name: str
    attendee_email: str
    repeated: bool  # the same Idempotency-Key was used before: nothing changed now


class ResendOut(msgspec.Struct, kw_only=True):
    order_number: str
    sent_to: str
    request: str


def _ticket(c: Card) -> TicketOut:
    t = c.ticket
    return TicketOut(ticket_number=t.number, order_number=c.order.number, status=c.status,
                     generation=t.generation, payload=c.payload, package=t.package,
                     seat=t.seat_words, seat_id=t.seat_id, attendee_name=t.attendee_name,
                     attendee_email=t.attendee_email, can_transfer=c.can_transfer,
                     transfer_refusal=c.refusal)


def _by_event(found: list[Card]) -> list[EventTicketsOut]:
    out: list[EventTicketsOut] = []
    for c in found:
        e = c.order.event
        if not out or out[-1].event_id != e.id:
            out.append(EventTicketsOut(
                event_id=e.id, slug=e.slug, title=e.title, starts_at=e.starts_at,
                ends_at=e.ends_at, timezone=e.timezone, venue=e.venue, place=e.place,
                directions=e.directions(), status=e.status, tickets=[]))
        out[-1].tickets.append(_ticket(c))
    return out


@api.get("/api/my/tickets", roles=(), response=MyTicketsOut, tag=TAG,
         summary="The caller's tickets by event (soonest first; past ones latest first), each "
                 "with its signed QR payload while it admits its holder", errors=(401,))
async def my_tickets(request: web.Request) -> MyTicketsOut:
    now = datetime.now(UTC)
    orders = await load_orders_of(request.app[DB], current_buyer(request) or "")
    found = await cards(request, orders, now=now)
    upcoming = [c for c in found if not c.past]
    past = sorted((c for c in found if c.past), key=lambda c: c.order.event.starts_at,
                  reverse=True)
    return MyTicketsOut(upcoming=_by_event(upcoming), past=_by_event(past))


@api.post(r"/api/tickets/{number:TKT-[0-9]{1,19}-[0-9A-Z]{4,24}}/transfer", roles=(),
          body=TransferIn, response=TransferOut, tag=TAG,
          summary="Give one of your tickets to someone else: a new code is issued and emailed to "
                  "them, the old one is refused at the entrance (`Idempotency-Key`: a repeat "
                  "changes nothing)", errors=(400, 401, 404, 409, 415, 422))
async def transfer(request: web.Request, body: TransferIn) -> TransferOut:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not _KEY.fullmatch(key):
        raise ApiError(422, "invalid", "Idempotency-Key must be 8-64 of A-Z a-z 0-9 _ . : -",
                       {"Idempotency-Key": "malformed"})
    number = request.match_info["number"]
    done = await request.app[HOLDERS].transfer(
        number, owner=current_buyer(request) or "", name=body.name, email=body.email,
        request=key or uuid.uuid4().hex)
    if not done.repeated:
        await request.app[PDFS].remove(done.order_number)
    return TransferOut(ticket_number=done.ticket_number, order_number=done.order_number,
                       generation=done.generation, attendee_name=done.name,
                       attendee_email=done.email, repeated=done.repeated)


@api.post(r"/api/orders/{number:ORD-[A-Za-z0-9-]{1,60}}/resend", response=ResendOut, status=202,
          tag=TAG, summary="Send an order's tickets again to its email address (its buyer, or "
                           "its signed link `?t=`); at most 3 an hour", errors=(404, 429))
async def resend(request: web.Request) -> ResendOut:
    order = await order_for(request, request.match_info["number"])
    if not order.live_tickets:
        raise ApiError(404, "no_tickets", "this order has no tickets to send")
    request_id = await request.app[HOLDERS].resend(order.number, order.event.id)
    return ResendOut(order_number=order.number, sent_to=order.email, request=request_id)
