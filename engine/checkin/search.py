"""Finding a ticket at the gate by hand: by ticket number, attendee name or email (the
attendee's or the buyer's). Postgres finds the tickets; their state comes from the gate register,
which is ahead of Postgres (a check-in reaches Postgres moments after it happens)."""

from __future__ import annotations

import asyncpg
import msgspec
import redis.asyncio as redis

from engine.checkin.desk import GateTicket

MAX_RESULTS = 20


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def find_tickets(pool: asyncpg.Pool, client: redis.Redis, register_key: str,
                       event_id: int, query: str) -> list[tuple[GateTicket, str]]:
    """Up to MAX_RESULTS tickets of `event_id` matching `query` (2-100 characters), each with
    its attendee's email, in the register's state."""
    q = query.strip()
    rows = await pool.fetch(
        "SELECT t.ticket_number, t.attendee_name, t.attendee_email, t.status, t.generation, "
        "t.package_id, t.seat_id FROM tickets t JOIN orders o ON o.id = t.order_id "
        "WHERE t.event_id = $1 AND (t.ticket_number = upper($2) "
        "  OR lower(t.attendee_name) LIKE lower($3) OR lower(t.attendee_email) = lower($2) "
        "  OR lower(o.email) = lower($2)) "
        "ORDER BY t.attendee_name, t.id LIMIT $4", event_id, q, _like(q), MAX_RESULTS)
    if not rows:
        return []
    raw = await client.hmget(register_key, [r["ticket_number"] for r in rows])
    found = []
    for row, entry in zip(rows, raw, strict=True):
        ticket = GateTicket(t=row["ticket_number"], s=row["status"], g=row["generation"],
                            p=row["package_id"], seat=row["seat_id"], n=row["attendee_name"])
        if entry is not None:
            try:
                ticket = msgspec.json.decode(entry, type=GateTicket)
                ticket.t = row["ticket_number"]
            except msgspec.DecodeError:
                pass
        found.append((ticket, row["attendee_email"]))
    return found
