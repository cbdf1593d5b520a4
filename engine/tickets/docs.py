"""What a PDF ticket shows, as plain values: the renderer reads nothing else (no Postgres, no
Redis), so whoever has the rows (the fulfillment worker, a re-render on download) builds these.

Times are timezone-aware; they are shown in the event's own time zone. Every text is one line as
the catalog stores it (a stray line break is shown as a space).
"""

from __future__ import annotations

from datetime import datetime

import msgspec

DEFAULT_TERMS = (
    "This ticket admits one person, once. Its QR code is checked at the entrance: keep it to "
    "yourself, since a copy scanned before you is admitted instead of you. A ticket transferred "
    "to someone else is void and replaced by theirs. Entry and refunds follow the organiser's "
    "conditions; the organiser named above is responsible for the event. Sold through Kwika."
)


class SeatDoc(msgspec.Struct, frozen=True, kw_only=True):
    section: str
    seat: str  # the seat number as printed in the venue, e.g. "12" or "C12"
    row: str | None = None


class TicketDoc(msgspec.Struct, frozen=True, kw_only=True):
    """One page: the ticket, its signed QR payload (`sign_ticket`) and who it is for."""

    ticket_number: str
    payload: str
    attendee_name: str
    package_name: str
    seat: SeatDoc | None = None  # None: general admission


class EventDoc(msgspec.Struct, frozen=True, kw_only=True):
    title: str
    provider_name: str
    starts_at: datetime
    timezone: str  # IANA name, e.g. "Africa/Blantyre"
    ends_at: datetime | None = None
    doors_at: datetime | None = None  # shown as "doors 18:00" when known
    venue: str = ""
    address: str = ""
    city: str = ""


class OrderDoc(msgspec.Struct, frozen=True, kw_only=True):
    """One file: an order's tickets (all of one event), one page each, in this order."""

    order_number: str
    event: EventDoc
    tickets: list[TicketDoc]
    terms: str = DEFAULT_TERMS
