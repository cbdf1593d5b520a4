"""The gate's register in Redis, `Keys.event(event_id, "tickets")`: ticket number -> JSON
{s: status valid | used | cancelled | refunded | revoked, g: generation (a transfer makes the next;
older payloads are refused), p: package id, seat: seat id or null, n: attendee name}. Format v1;
the check-in issue extends it.

Every write from the record (the issuer after an order is written, a restore rebuilding it) goes
through `scripts/lua/register_tickets.lua`, which only moves the register forward: a ticket it
lacks is added, one it has moves only to a higher generation or, at the same generation, to a
later status; a used ticket never becomes valid again and check-in fields stay. So a stale read
can never bring back a code a transfer replaced, nor undo a check-in.
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg
import msgspec
import redis.asyncio as redis

from engine.keys import Keys
from engine.lua import load_script

BATCH = 500  # the script's bound on pairs a call
_SCRIPT = load_script("register_tickets")


class GateTicket(msgspec.Struct, kw_only=True):
    s: str
    g: int
    p: int
    seat: int | None
    n: str
    # a used ticket rebuilt from the record: its check-in (ms, gate, who), so the gate can still
    # say where it came in and the provider take it back; left out otherwise
    at: int | msgspec.UnsetType = msgspec.UNSET
    gate: str | msgspec.UnsetType = msgspec.UNSET
    by: str | msgspec.UnsetType = msgspec.UNSET


def _ticket(row: asyncpg.Record) -> GateTicket:
    ticket = GateTicket(s=row["status"], g=row["generation"], p=row["package_id"],
                        seat=row["seat_id"], n=row["attendee_name"])
    by, _, gate = (row["checked_in_by"] or "").partition(" at ")  # "u:<id> at <gate>"
    if row["status"] == "used" and row["checked_in_at"] is not None and by and gate:
        ticket.at = int(row["checked_in_at"].timestamp() * 1000)
        ticket.gate, ticket.by = gate, by
    return ticket


async def register(client: redis.Redis, key: str, tickets: Iterable[tuple[str, GateTicket]]) -> int:
    """Move the register `key` forward to `tickets` (see the module docstring), in batches the
    script accepts. Returns how many entries were written."""
    script = client.register_script(_SCRIPT.source)
    written, args = 0, []
    for number, ticket in tickets:
        args += [number, msgspec.json.encode(ticket)]
        if len(args) >= 2 * BATCH:
            written += int(await script(keys=[key], args=args))
            args = []
    if args:
        written += int(await script(keys=[key], args=args))
    return written


async def rebuild(client: redis.Redis, keys: Keys, event_id: int, conn: asyncpg.Connection) -> int:
    """Bring the event's register up to the record (every ticket of the event in Postgres): after
    Redis lost it or came back from an older copy, a revoked generation or a refund is not admitted
    again. Runs inside the caller's transaction (a cursor). Returns how many entries were written."""
    written, batch = 0, []
    key = keys.event(event_id, "tickets")
    async for row in conn.cursor(
            "SELECT t.ticket_number, t.status, t.generation, t.package_id, t.seat_id, "
            "t.attendee_name, t.checked_in_at, t.checked_in_by FROM tickets t "
            "WHERE t.event_id = $1 ORDER BY t.id", event_id, prefetch=BATCH):
        batch.append((row["ticket_number"], _ticket(row)))
        if len(batch) >= BATCH:
            written += await register(client, key, batch)
            batch = []
    if batch:
        written += await register(client, key, batch)
    return written
