"""The letters Kwika sends, built from the record's plain values (no I/O here): who gets them,
their subject, and what their templates show. Attachments are made by the caller once the
message is claimed (fulfillment/mail/postman.py)."""

from __future__ import annotations

from engine.money import money
from engine.tickets.docs import EventDoc
from fulfillment.mail.content import OrderFacts, TicketFacts
from fulfillment.mail.message import Letter


def when(event: EventDoc) -> str:
    """"Sat 9 Jan 2027, 19:00 · ends 23:00 · Blantyre time (CAT)", as the PDF ticket says it."""
    from engine.tickets.pdf import when_words

    first, times = when_words(event)
    return f"{first} · {times}"


def _common(order: OrderFacts, site: str, secret: str) -> dict:
    return {"order": order, "event": order.event, "when": when(order.event.doc()),
            "place": order.event.place, "directions": order.event.directions(),
            "order_link": order.link(site, secret), "event_link": f"{site}/events/{order.event.slug}",
            "total": money(order.total, order.currency)}


def tickets(order: OrderFacts, site: str, secret: str, *, again: bool = False) -> Letter:
    """The buyer's tickets (the PDF and an .ics attached); `again` for a resend."""
    count = len(order.live_tickets)
    noun = "ticket" if count == 1 else "tickets"
    subject = f"Your {noun} for {order.event.title}" + (" (sent again)" if again else "")
    return Letter(to=order.email, to_name=order.buyer_name, subject=subject, template="tickets",
                  context=_common(order, site, secret) | {
                      "tickets": order.live_tickets, "count": count, "noun": noun,
                      "again": again})


def provider_sale(order: OrderFacts, site: str) -> Letter:
    """The organiser's notice of a new sale: the order, its tickets, the amount."""
    count = len(order.tickets)
    return Letter(
        to=order.event.provider_email, to_name=order.event.provider_name,
        subject=f"New sale: {count} ticket{'s' if count != 1 else ''} for {order.event.title} "
                f"({order.number})",
        template="provider_sale",
        context={"order": order, "event": order.event, "when": when(order.event.doc()),
                 "tickets": order.tickets, "count": count,
                 "subtotal": money(order.subtotal, order.currency),
                 "fees": money(order.fees, order.currency),
                 "total": money(order.total, order.currency),
                 "event_link": f"{site}/events/{order.event.slug}"})


def reminder(order: OrderFacts, site: str, secret: str) -> Letter:
    """24 hours before the event: when, where, how to get there, where the tickets are."""
    return Letter(to=order.email, to_name=order.buyer_name,
                  subject=f"Tomorrow: {order.event.title}", template="reminder",
                  context=_common(order, site, secret) | {"tickets": order.live_tickets})


def transfer(order: OrderFacts, ticket: TicketFacts, site: str) -> Letter:
    """A ticket transferred to someone: theirs now (its own PDF attached)."""
    return Letter(to=ticket.attendee_email, to_name=ticket.attendee_name,
                  subject=f"A ticket for you: {order.event.title}", template="transfer",
                  context={"event": order.event, "when": when(order.event.doc()),
                           "place": order.event.place, "directions": order.event.directions(),
                           "ticket": ticket, "from_name": order.buyer_name,
                           "event_link": f"{site}/events/{order.event.slug}"})


def refund_reason(reason: str | None) -> str:
    """Why a payment is refunded, in words for its payer (engine/payments/service.py's reasons)."""
    reason = reason or ""
    if "already paid" in reason:
        return "the order had already been paid"
    if reason.startswith("paid "):
        return "the amount paid did not match the order"
    if "no order matches" in reason:
        return "no order matched it"
    return "it arrived after the tickets it was for could no longer be sold to you"


def refund_due(*, to: str, name: str, order_number: str, amount: int, currency: str,
               event_title: str | None, reason: str | None) -> Letter:
    """A payment that came too late (or twice, or for another amount): it is being refunded."""
    return Letter(to=to, to_name=name, subject=f"Your payment for {order_number} is being refunded",
                  template="refund_due",
                  context={"name": name, "order_number": order_number,
                           "amount": money(amount, currency), "event_title": event_title,
                           "why": refund_reason(reason)})


def staff_invite(*, to: str, provider: str, events: list[str] | None, link: str) -> Letter:
    """An invitation to scan tickets at the gate of a provider's events (`events` None: all)."""
    return Letter(to=to, subject=f"{provider} invites you to scan tickets at the gate",
                  template="staff_invite",
                  context={"provider": provider, "events": events, "link": link})
