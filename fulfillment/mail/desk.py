"""The mail desk: every letter of an order, from the record to the SMTP server, each once.

Tickets (the order's PDF, rendered in the process pool and kept by the PdfStore, and the event's
.ics), the provider's new-sale notice, a resend, a transferred ticket, the reminder and the
refund-due notice. What is sent once is decided by the email log's (kind, dedupe key):

    tickets        order number          provider_sale  order number
    resend         the request's id      transfer       ticket number:generation
    reminder       order number          refund_due     payment reference
    staff_invite   invite:<id>
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from engine.settings import Settings
from engine.tickets import Keyring
from engine.tickets.store import PdfStore
from fulfillment.mail import letters
from fulfillment.mail.content import OrderFacts, load_order, order_doc
from fulfillment.mail.message import Attachment
from fulfillment.mail.postman import Outcome, Postman

log = logging.getLogger(__name__)
SKIPPED = Outcome("skipped")


class UnknownOrder(LookupError):
    """The record has no such order (or no such ticket in it): nothing can ever be sent."""


class MailDesk:
    def __init__(self, pool: asyncpg.Pool, postman: Postman, store: PdfStore, keyring: Keyring,
                 settings: Settings):
        self.pool = pool
        self.postman = postman
        self.store = store
        self.keyring = keyring
        self.site = settings.site_url
        self.secret = str(settings.secret_key)

    async def order(self, order_number: str) -> OrderFacts:
        found = await load_order(self.pool, order_number)
        if found is None:
            raise UnknownOrder(f"no order {order_number}")
        return found

    # --- what the deliveries stream asks for --------------------------------------------------
    async def sold(self, order_number: str) -> list[Outcome]:
        """A new order: its tickets to the buyer, and the notice to the provider."""
        order = await self.order(order_number)
        return [await self.tickets(order), await self.provider_sale(order)]

    async def tickets(self, order: OrderFacts, *, resend_key: str | None = None) -> Outcome:
        if not order.live_tickets:  # refunded or cancelled before the mail went: nothing to send
            return SKIPPED
        again = resend_key is not None
        letter = letters.tickets(order, self.site, self.secret, again=again)

        async def attach() -> list[Attachment]:
            def make():
                return asyncio.to_thread(order_doc, self.keyring, order)
            if again:  # fresh: the tickets may have changed since (a transfer)
                pdf = await self.store.render_and_store(await make())
            else:
                pdf = await self.store.get_or_render(order.number, make)
            return [Attachment(f"tickets-{order.number}.pdf", pdf, "application/pdf"),
                    Attachment("event.ics", order.event.ics(self.site).encode(), "text/calendar")]

        if again:
            return await self.postman.send_once("resend", resend_key, letter,
                                                order_number=order.number, attach=attach)
        return await self.postman.send_once("tickets", order.number, letter,
                                            order_number=order.number, attach=attach)

    async def provider_sale(self, order: OrderFacts) -> Outcome:
        return await self.postman.send_once("provider_sale", order.number,
                                            letters.provider_sale(order, self.site),
                                            order_number=order.number)

    async def resend(self, order_number: str, key: str) -> list[Outcome]:
        return [await self.tickets(await self.order(order_number), resend_key=key)]

    async def transfer(self, order_number: str, ticket_number: str) -> list[Outcome]:
        """The transferred ticket, at its current generation, to its current attendee; the
        order's stored PDF is dropped (its next download renders the new payloads)."""
        order = await self.order(order_number)
        ticket = next((t for t in order.tickets if t.number == ticket_number), None)
        if ticket is None:
            raise UnknownOrder(f"no ticket {ticket_number} in order {order_number}")
        await self.store.remove(order.number)
        if ticket.status not in ("valid", "used"):
            return [SKIPPED]

        async def attach() -> list[Attachment]:
            doc = await asyncio.to_thread(order_doc, self.keyring, order, [ticket])
            pdf = await self.store.renderer.render(doc)
            return [Attachment(f"ticket-{ticket.number}.pdf", pdf, "application/pdf"),
                    Attachment("event.ics", order.event.ics(self.site).encode(), "text/calendar")]

        return [await self.postman.send_once(
            "transfer", f"{ticket.number}:{ticket.generation}",
            letters.transfer(order, ticket, self.site), order_number=order.number,
            attach=attach)]

    async def staff_invite(self, invite_id: int, token: str) -> Outcome:
        """A gate staff invitation to its address, with the link that accepts it (skipped once
        it is accepted or expired)."""
        row = await self.pool.fetchrow(
            "SELECT i.email, i.all_events, i.accepted_at, i.expires_at <= now() AS expired, "
            "sp.business_name, (SELECT array_agg(e.title ORDER BY e.starts_at) FROM events e "
            "  WHERE e.id = ANY (i.event_ids)) AS titles "
            "FROM gate_invites i JOIN service_providers sp ON sp.id = i.provider_id "
            "WHERE i.id = $1", invite_id)
        if row is None:
            raise UnknownOrder(f"no staff invitation {invite_id}")
        if row["accepted_at"] is not None or row["expired"]:
            return SKIPPED
        letter = letters.staff_invite(
            to=row["email"], provider=row["business_name"],
            events=None if row["all_events"] else list(row["titles"] or []),
            link=f"{self.site}/staff/accept?token={token}")
        return await self.postman.send_once("staff_invite", f"invite:{invite_id}", letter)

    # --- what the scheduler sends ---------------------------------------------------------
    async def reminder(self, order_number: str) -> Outcome:
        order = await self.order(order_number)
        if not order.live_tickets:
            return SKIPPED
        return await self.postman.send_once(
            "reminder", order.number, letters.reminder(order, self.site, self.secret),
            order_number=order.number,
            attach=lambda: _ics(order, self.site))

    async def refund_due(self, payment: asyncpg.Record) -> Outcome:
        """`payment`: reference, order_number, amount, currency, reason, email, name, title."""
        letter = letters.refund_due(
            to=payment["email"], name=payment["name"] or "there",
            order_number=payment["order_number"], amount=payment["amount"],
            currency=payment["currency"].strip(), event_title=payment["title"],
            reason=payment["reason"])
        return await self.postman.send_once("refund_due", payment["reference"], letter,
                                            order_number=payment["order_number"])


async def _ics(order: OrderFacts, site: str) -> list[Attachment]:
    return [Attachment("event.ics", order.event.ics(site).encode(), "text/calendar")]
