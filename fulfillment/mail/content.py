"""What an order's letters say, loaded from Postgres (the record): the order, its event and
provider, its tickets with package and seat. Letters are built from these plain values; the
PDF documents too (`order_doc`, each payload signed with the current key)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

import asyncpg

from engine.calendar import event_ics
from engine.signing import order_path
from engine.tickets import Keyring, TicketClaims, sign_ticket
from engine.tickets.docs import EventDoc, OrderDoc, SeatDoc, TicketDoc

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
    status: str
    generation: int
    seat_id: int | None
    package: str
    price: int
    attendee_name: str
    attendee_email: str
    section: str | None
    row: str | None
    seat: str | None

    @property
    def seat_words(self) -> str:
        if self.seat is None:
            return "General admission"
        return " · ".join(x for x in (f"Section {self.section}" if self.section else "",
                                      f"Row {self.row}" if self.row else "",
                                      f"Seat {self.seat}") if x)


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

    @property
    def live_tickets(self) -> list[TicketFacts]:
        return [t for t in self.tickets if t.status in LIVE]

    def link(self, site: str, secret: str) -> str:
        """The order's signed link: a guest's way back to it (and to the PDF)."""
        return site + order_path(secret, self.number)


async def load_order(pool: asyncpg.Pool, order_number: str) -> OrderFacts | None:
    """The order as the record has it, or None when there is no such order."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            """SELECT o.order_number, o.status, o.email, o.buyer_name, o.subtotal, o.fees, o.total,
                      o.currency, o.sold_at, o.id AS order_id,
                      e.id AS event_id, e.slug, e.title, e.description, e.starts_at, e.ends_at,
                      e.timezone, e.venue, e.address, e.city, e.latitude, e.longitude,
                      e.status AS event_status, p.business_name,
                      coalesce(nullif(p.contact_email, ''), u.email) AS provider_email
               FROM orders o JOIN events e ON e.id = o.event_id
               JOIN service_providers p ON p.id = e.provider_id
               JOIN users u ON u.id = p.user_id
               WHERE o.order_number = $1""", order_number)
        if row is None:
            return None
        tickets = await conn.fetch(
            """SELECT t.ticket_number, t.status, t.generation, t.seat_id, t.price,
                      t.attendee_name, t.attendee_email, k.name AS package,
                      s.seat_number, s."row", sc.name AS section
               FROM tickets t JOIN ticket_packages k ON k.id = t.package_id
               LEFT JOIN seats s ON s.id = t.seat_id
               LEFT JOIN sections sc ON sc.id = s.section_id
               WHERE t.order_id = $1 ORDER BY t.id""", row["order_id"])
    event = EventFacts(
        id=row["event_id"], slug=row["slug"], title=row["title"], description=row["description"],
        starts_at=row["starts_at"], ends_at=row["ends_at"], timezone=row["timezone"],
        venue=row["venue"], address=row["address"], city=row["city"], latitude=row["latitude"],
        longitude=row["longitude"], status=row["event_status"],
        provider_name=row["business_name"], provider_email=row["provider_email"])
    return OrderFacts(
        number=row["order_number"], status=row["status"], email=row["email"],
        buyer_name=row["buyer_name"], subtotal=row["subtotal"], fees=row["fees"],
        total=row["total"], currency=row["currency"].strip(), sold_at=row["sold_at"],
        event=event, tickets=[TicketFacts(
            number=t["ticket_number"], status=t["status"], generation=t["generation"],
            seat_id=t["seat_id"], package=t["package"], price=t["price"],
            attendee_name=t["attendee_name"], attendee_email=t["attendee_email"],
            section=t["section"], row=t["row"], seat=t["seat_number"]) for t in tickets])


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
