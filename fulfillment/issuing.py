"""After an order is written: its tickets are registered in Redis for the gate, and its delivery
(the tickets by email) is queued. Both are idempotent, so an entry delivered twice, or a worker
that died between the commit and these, does no harm.

The gate's register, `Keys.event(event_id, "tickets")` (a hash under the event's tag, so the scan
script of the gate touches one slot): ticket number -> JSON {s: status valid | used | cancelled |
refunded | revoked, g: generation (a transfer makes the next; older payloads are refused),
p: package id, seat: seat id or null, n: attendee name}. Format v1; the check-in issue extends it.
It is written through `engine.tickets.gate.register` (scripts/lua/register_tickets.lua), which
only moves it forward: the read below may be stale (a transfer or a check-in landing after it),
and then the register keeps the newer state.
The delivery queue, `Keys.deliveries()`: a stream of {order, event} consumed by the mail worker
(fulfillment/mail/delivery.py documents the entry format, `kind` resend | transfer included). An
order written twice is queued twice; the email log sends its tickets once.
"""

from __future__ import annotations

import asyncpg
import redis.asyncio as redis

from engine.keys import Keys
from engine.tickets.gate import GateTicket, register
from fulfillment.writer import Entry

__all__ = ["GateTicket", "Issuer", "gate_tickets"]


async def gate_tickets(pool: asyncpg.Pool, order_number: str) -> dict[str, GateTicket]:
    rows = await pool.fetch(
        "SELECT t.ticket_number, t.status, t.generation, t.package_id, t.seat_id, t.attendee_name "
        "FROM tickets t JOIN orders o ON o.id = t.order_id WHERE o.order_number = $1",
        order_number)
    return {r["ticket_number"]: GateTicket(s=r["status"], g=r["generation"], p=r["package_id"],
                                           seat=r["seat_id"], n=r["attendee_name"]) for r in rows}


class Issuer:
    """The fulfillment consumer's `after_write`."""

    def __init__(self, pool: asyncpg.Pool, client: redis.Redis, keys: Keys):
        self.pool, self.client, self.keys = pool, client, keys

    async def __call__(self, entry: Entry) -> None:
        tickets = await gate_tickets(self.pool, entry.order_number)
        if tickets:
            await register(self.client, self.keys.event(entry.event_id, "tickets"), tickets.items())
        await self.client.xadd(self.keys.deliveries(), {"order": entry.order_number,
                                                        "event": str(entry.event_id)})
