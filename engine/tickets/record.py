"""An order as the record (Postgres) has it: the order, its event and provider, its tickets
with package, seat and whether each was given to someone else. The mail letters, the PDF
documents and the buyer's My tickets pages are all built from these plain values, so they say
the same thing.

A ticket that its buyer *transferred* (`order_history` has a `transferred` row for it) keeps its
row in the buyer's order, with the new attendee and a higher generation; it is not among the
order's `live_tickets`, so the buyer's PDF, resend and reminder no longer carry it: it is the new
holder's now (they receive it by email).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

import asyncpg

from engine.calendar import event_ics
from engine.signing import order_path
from engine.tickets.docs import EventDoc, OrderDoc, SeatDoc, TicketDoc
from engine.tickets.keyring import Keyring
from engine.tickets.payload import TicketClaims, sign_ticket

LIVE = ("valid", "used")  # tickets an order's PDF shows


@dataclass(frozen=True)
class EventFacts:
    id: int
    slug: str
    title: str
    description: str
    starts_at: datetime
    ends_at: datetime
    timezone: str
    venue: str
    address: str
    city: str
    latitude: float | None
    longitude: float | None
    status: str
    provider_name: str
    provider_email: str

    @property
    def place(self) -> str:
        return ", ".join(x for x in (self.venue, self.address, self.city) if x)

    def directions(self) -> str:
        """A Google Maps search for the venue, its address and city."""
        query = self.place or self.title
        return "https://www.google.com/maps/search/?" + urlencode({"api": 1, "query": query})

    def doc(self) -> EventDoc:
        return EventDoc(title=self.title, provider_name=self.provider_name,
                        starts_at=self.starts_at, ends_at=self.ends_at, timezone=self.timezone,
                        venue=self.venue, address=self.address, city=self.city)

    def ics(self, site: str) -> str:
        return event_ics(event_id=self.id, title=self.title, starts_at=self.starts_at,
                         ends_at=self.ends_at, url=f"{site}/events/{self.slug}",
                         description=self.description, venue=self.venue,
                         address=self.address, city=self.city, latitude=self.latitude,
                         longitude=self.longitude, cancelled=self.status == "cancelled")


@dataclass(frozen=True)
class TicketFacts:
    number: str
    status: str  # valid | used | cancelled | refunded | revoked (tickets.status)
    generation: int
    seat_id: int | None
    package: str
    price: int
    attendee_name: str
    attendee_email: str
    section: str | None
    row: str | None
    seat: str | None
    transferred: bool = False  # its buyer gave it to the attendee it names now

    @property
    def seat_words(self) -> str:
        if self.seat is None:
            return "General admission"
        return " · ".join(x for x in (f"Section {self.section}" if self.section else "",
                                      f"Row {self.row}" if self.row else "",
                                      f"Seat {self.seat}") if x)

    @property
    def shown_status(self) -> str:
        """What the buyer is told: valid, used, cancelled, refunded or transferred."""
        if self.status == "valid" and self.transferred:
            return "transferred"
        return "cancelled" if self.status == "revoked" else self.status


@dataclass(frozen=True)
class OrderFacts:
    number: str
    status: str
    email: str
    buyer_name: str
    subtotal: int
    fees: int
    total: int
    currency: str
    sold_at: datetime
    event: EventFacts
    tickets: list[TicketFacts]
    buyer: str = ""  # u:<user id> | g:<guest id>

    @property
    def live_tickets(self) -> list[TicketFacts]:
        """The tickets the buyer holds: valid or used, and not given to someone else."""
        return [t for t in self.tickets if t.status in LIVE and not t.transferred]

    def link(self, site: str, secret: str) -> str:
        """The order's signed link: a guest's way back to it (and to the PDF)."""
        return site + order_path(secret, self.number)


_ORDERS = """
    SELECT o.order_number, o.status, o.email, o.buyer_name, o.subtotal, o.fees, o.total,
           o.currency, o.sold_at, o.id AS order_id, o.buyer,
           e.id AS event_id, e.slug, e.title, e.description, e.starts_at, e.ends_at,
           e.timezone, e.venue, e.address, e.city, e.latitude, e.longitude,
           e.status AS event_status, p.business_name,
           coalesce(nullif(p.contact_email, ''), u.email) AS provider_email
    FROM orders o JOIN events e ON e.id = o.event_id
    JOIN service_providers p ON p.id = e.provider_id
    JOIN users u ON u.id = p.user_id"""
_TICKETS = """
    SELECT t.order_id, t.ticket_number, t.status, t.generation, t.seat_id, t.price,
           t.attendee_name, t.attendee_email, k.name AS package,
           s.seat_number, s."row", sc.name AS section,
           EXISTS (SELECT 1 FROM order_history h WHERE h.order_id = t.order_id
                   AND h.ticket_id = t.id AND h.change = 'transferred') AS transferred
    FROM tickets t JOIN ticket_packages k ON k.id = t.package_id
    LEFT JOIN seats s ON s.id = t.seat_id
    LEFT JOIN sections sc ON sc.id = s.section_id
    WHERE t.order_id = any($1::bigint[]) ORDER BY t.id"""


async def load_order(pool: asyncpg.Pool, order_number: str) -> OrderFacts | None:
    """The order as the record has it, or None when there is no such order."""
    found = await _load(pool, _ORDERS + " WHERE o.order_number = $1", order_number)
    return found[0] if found else None


async def load_orders_of(pool: asyncpg.Pool, buyer: str, limit: int = 500) -> list[OrderFacts]:
    """The orders of one buyer (`u:<user id>` or `g:<guest id>`), soonest event first."""
    return await _load(pool, _ORDERS + " WHERE o.buyer = $1 ORDER BY e.starts_at, e.id, o.id LIMIT $2",
                       buyer, limit)


async def order_of_ticket(pool: asyncpg.Pool, ticket_number: str, buyer: str) -> str | None:
    """The number of `buyer`'s order that holds the ticket; None when `buyer` has no such one."""
    return await pool.fetchval(
        "SELECT o.order_number FROM tickets t JOIN orders o ON o.id = t.order_id "
        "WHERE t.ticket_number = $1 AND o.buyer = $2", ticket_number, buyer)


async def _load(pool: asyncpg.Pool, query: str, *args: object) -> list[OrderFacts]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(query, *args)
        if not rows:
            return []
        tickets = await conn.fetch(_TICKETS, [r["order_id"] for r in rows])
    by_order: dict[int, list[TicketFacts]] = {r["order_id"]: [] for r in rows}
    for t in tickets:
        by_order[t["order_id"]].append(TicketFacts(
            number=t["ticket_number"], status=t["status"], generation=t["generation"],
            seat_id=t["seat_id"], package=t["package"], price=t["price"],
            attendee_name=t["attendee_name"], attendee_email=t["attendee_email"],
            section=t["section"], row=t["row"], seat=t["seat_number"],
            transferred=t["transferred"]))
    return [OrderFacts(
        number=row["order_number"], status=row["status"], email=row["email"],
        buyer_name=row["buyer_name"], subtotal=row["subtotal"], fees=row["fees"],
        total=row["total"], currency=row["currency"].strip(), sold_at=row["sold_at"],
        event=EventFacts(
            id=row["event_id"], slug=row["slug"], title=row["title"],
            description=row["description"], starts_at=row["starts_at"], ends_at=row["ends_at"],
            timezone=row["timezone"], venue=row["venue"], address=row["address"],
            city=row["city"], latitude=row["latitude"], longitude=row["longitude"],
            status=row["event_status"], provider_name=row["business_name"],
            provider_email=row["provider_email"]),
        tickets=by_order[row["order_id"]], buyer=row["buyer"]) for row in rows]


def ticket_doc(keyring: Keyring, event_id: int, ticket: TicketFacts) -> TicketDoc:
    payload = sign_ticket(keyring, TicketClaims(ticket_number=ticket.number, event_id=event_id,
                                                seat_id=ticket.seat_id,
                                                generation=ticket.generation))
    seat = None
    if ticket.seat is not None:
        seat = SeatDoc(section=ticket.section or "", seat=ticket.seat, row=ticket.row)
    return TicketDoc(ticket_number=ticket.number, payload=payload,
                     attendee_name=ticket.attendee_name, package_name=ticket.package, seat=seat)


def order_doc(keyring: Keyring, order: OrderFacts,
              tickets: list[TicketFacts] | None = None) -> OrderDoc:
    """The PDF document of `tickets` (default: the order's live ones), payloads signed now
    (Ed25519 is deterministic: the same ticket and key give the same code every time)."""
    chosen = order.live_tickets if tickets is None else tickets
    return OrderDoc(order_number=order.number, event=order.event.doc(),
                    tickets=[ticket_doc(keyring, order.event.id, t) for t in chosen])
