"""The steps the My tickets pages and JSON routes share: who may see an order's tickets, the
ticket cards (signed payload, QR code, words), the PDF, a resend and a transfer.

Orders here are the record's (Postgres, written by the fulfillment worker), not the Redis drafts
of the buying pages. An order is seen by its buyer (`orders.buyer` is the caller's buyer key) or
with its signed link (`?t=`, purpose "order"); anyone else gets the same 404 as for a missing
order, so order and ticket numbers cannot be probed.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import segno
from aiohttp import web

from engine.errors import NotFound
from engine.signing import unsign
from engine.tickets import Keyring, TicketClaims, sign_ticket
from engine.tickets.holders import BuyerTickets, transfer_refusal
from engine.tickets.record import OrderFacts, TicketFacts, load_order, order_doc
from engine.tickets.store import PdfStore, TicketRenderer
from storefront.appkeys import DB, EXECUTOR, KEYS, REDIS, SETTINGS
from storefront.buyer import current_buyer
from storefront.ticket_keys import KEYRING

HOLDERS = web.AppKey("buyer_tickets", BuyerTickets)
PDFS = web.AppKey("ticket_pdfs", PdfStore)
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
SHOWS_CODE = "valid"  # the only shown status whose QR code is on the page


async def resources(app: web.Application) -> AsyncIterator[None]:
    """The transfer/resend steps and the PDF store (its render process starts on first use)."""
    settings = app[SETTINGS]
    app[HOLDERS] = BuyerTickets(app[DB], app[REDIS], app[KEYS])
    renderer = TicketRenderer(settings.ticket_render_workers or 1)
    app[PDFS] = PdfStore(settings.tickets_path, renderer)
    try:
        yield
    finally:
        await renderer.close()


# --- who may see ------------------------------------------------------------------------------
def is_owner(request: web.Request, order: OrderFacts) -> bool:
    buyer = current_buyer(request)
    return buyer is not None and buyer == order.buyer


def has_link(request: web.Request, order_number: str) -> bool:
    token = request.query.get("t", "")
    secret = request.app[SETTINGS].secret_key
    return bool(token) and unsign(secret, "order", f"{order_number}.{token}") == order_number


async def order_for(request: web.Request, number: str) -> OrderFacts:
    """The written order when the caller may see it (its buyer, or its signed link); else the
    same 404 as a missing one."""
    order = await load_order(request.app[DB], number)
    if order is None or not (is_owner(request, order) or has_link(request, number)):
        raise NotFound(f"no order {number}", code="unknown_order")
    return order


# --- words ------------------------------------------------------------------------------------
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def when_words(starts_at: datetime, tz: str, now: datetime | None = None) -> str:
    """"Sat 11 Jan, 19:00" in the event's zone (the year too when it is not this year's)."""
    zone = _zone(tz)
    start = starts_at.astimezone(zone) if zone else starts_at
    year = "" if start.year == (now or datetime.now(UTC)).year else f" {start.year}"
    return f"{_DAYS[start.weekday()]} {start.day} {_MONTHS[start.month - 1]}{year}, {start:%H:%M}"


def zone_words(starts_at: datetime, tz: str) -> str:
    """"Blantyre time (CAT)": the zone, said once."""
    zone = _zone(tz)
    if zone is None:
        return "UTC"
    return f"{tz.rsplit('/', 1)[-1].replace('_', ' ')} time ({starts_at.astimezone(zone).tzname()})"


# --- cards ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Card:
    """One ticket as the pages and the API show it."""

    order: OrderFacts
    ticket: TicketFacts
    status: str  # valid | used | cancelled | refunded | transferred
    payload: str | None  # the current signed payload; None when the code is not shown
    qr: str | None  # the payload's QR code as inline SVG
    past: bool
    refusal: str | None  # why it cannot be transferred; None: it can

    @property
    def can_transfer(self) -> bool:
        return self.refusal is None


@functools.lru_cache(maxsize=2048)
def qr_svg(payload: str) -> str:
    """The QR code of a payload as inline SVG (scaled by CSS through its viewBox). segno is pure
    Python: callers run this in the executor. Payloads are deterministic, so it is cached."""
    code = segno.make(payload, error="q", micro=False)
    return code.svg_inline(border=4, dark="#000", light="#fff", omitsize=True, svgclass="qr",
                           lineclass=None, title="Ticket QR code")


def _codes(keyring: Keyring, wanted: list[tuple[str, int, int | None, int]]) -> list[tuple[str, str]]:
    out = []
    for number, event_id, seat_id, generation in wanted:
        payload = sign_ticket(keyring, TicketClaims(ticket_number=number, event_id=event_id,
                                                    seat_id=seat_id, generation=generation))
        out.append((payload, qr_svg(payload)))
    return out


def is_past(order: OrderFacts, now: datetime) -> bool:
    return order.event.ends_at <= now


async def cards(request: web.Request, orders: list[OrderFacts], *, with_codes: bool = True,
                now: datetime | None = None) -> list[Card]:
    """Every ticket of `orders` as a card. A QR code is shown only for a ticket that admits its
    holder now (valid, not given away, its event not over), signed at its current generation."""
    now = now or datetime.now(UTC)
    keyring = request.app[KEYRING]
    plain = []
    for order in orders:
        past = is_past(order, now)
        for ticket in order.tickets:
            status = ticket.shown_status
            refusal = transfer_refusal(ticket.status, order.status, order.event.status,
                                       order.event.ends_at, now, ticket.transferred)
            plain.append((order, ticket, status, past,
                          refusal[1] if refusal else None))
    shown = [(o.event.id, t) for o, t, status, past, _ in plain
             if status == SHOWS_CODE and not past and o.status == "confirmed"]
    codes: dict[str, tuple[str, str]] = {}
    if with_codes and shown and keyring:
        wanted = [(t.number, event_id, t.seat_id, t.generation) for event_id, t in shown]
        made = await asyncio.get_running_loop().run_in_executor(
            request.app[EXECUTOR], _codes, keyring, wanted)
        codes = {number: code for (number, *_), code in zip(wanted, made, strict=True)}
    return [Card(order=o, ticket=t, status=status, payload=codes.get(t.number, (None, None))[0],
                 qr=codes.get(t.number, (None, None))[1], past=past, refusal=refusal)
            for o, t, status, past, refusal in plain]


# --- the PDF ----------------------------------------------------------------------------------
async def order_pdf(request: web.Request, order: OrderFacts) -> bytes:
    """The order's PDF (its live tickets), from the store or rendered now in the render process."""
    keyring = request.app[KEYRING]

    async def make():
        return await asyncio.to_thread(order_doc, keyring, order)

    return await request.app[PDFS].get_or_render(order.number, make)
