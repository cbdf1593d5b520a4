"""A demo order's PDF documents, signed for real: what the tests, the benchmark and a preview
render. Names and places are not ASCII on purpose."""

from __future__ import annotations

from datetime import UTC, datetime

from engine.tickets.docs import EventDoc, OrderDoc, SeatDoc, TicketDoc
from engine.tickets.keyring import Keyring
from engine.tickets.payload import TicketClaims, new_ticket_number, sign_ticket

EVENT = EventDoc(
    title="Ëvent Night: Lake of Stars Festival", provider_name="Chikondi Bañda Productions",
    starts_at=datetime(2027, 1, 9, 17, 0, tzinfo=UTC), doors_at=datetime(2027, 1, 9, 16, 0, tzinfo=UTC),
    ends_at=datetime(2027, 1, 9, 21, 0, tzinfo=UTC), timezone="Africa/Blantyre",
    venue="Chichiri Stadium", address="Masauko Chipembere Highway", city="Blantyre")
ATTENDEES = ("Chikondi Bañda", "Thandiwe Mkandawire", "Nguyễn Văn An", "Zoë Øberg")


def sample_order(keyring: Keyring, tickets: int = 3, *, event_id: int = 42, seated: bool = True,
                 order_number: str = "ORD-1799510400-DEMO", event: EventDoc = EVENT) -> OrderDoc:
    """An order of `tickets` tickets: seats C1, C2, ... in the Stalls (every third ticket general
    admission when `seated`), each payload signed by `keyring`'s current key."""
    docs = []
    for i in range(tickets):
        number = new_ticket_number(event_id)
        with_seat = seated and i % 3 != 2
        seat_id = 1000 + i if with_seat else None
        payload = sign_ticket(keyring, TicketClaims(ticket_number=number, event_id=event_id,
                                                    seat_id=seat_id))
        docs.append(TicketDoc(
            ticket_number=number, payload=payload, attendee_name=ATTENDEES[i % len(ATTENDEES)],
            package_name="VIP" if with_seat else "General Admission",
            seat=SeatDoc(section="Stalls", row="C", seat=str(i + 1)) if with_seat else None))
    return OrderDoc(order_number=order_number, event=event, tickets=docs)
