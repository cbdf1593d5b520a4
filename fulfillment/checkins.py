"""The check-in writer: reads each event's check-in stream (`Keys.event(id, "checkins")`, entry
format in scripts/lua/includes/checkin.lua) in the consumer group `checkins` and writes every
entry to Postgres: a row in `checkins` (unique per event and entry id) and, in the same
transaction, the ticket's `status`, `checked_in_at` and `checked_in_by`.

Exactly once: an entry is acknowledged only after its transaction commits; one a dead worker
left pending is claimed (XAUTOCLAIM) and written again, and its log row, already there, makes the
second write change nothing. The ticket keeps the earliest check-in since its last undo (an
offline gate's earlier scan, synced late, wins; an undo makes it valid again), computed from its
whole log, so entries written out of stream order (two workers, a dead one's claimed late) end
where the gate is. Entries that cannot be read go to
the dead letters with their reason. A stream is trimmed only below what the group acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import UTC, datetime

import asyncpg
import msgspec
import redis.asyncio as redis
from redis.exceptions import ResponseError

from engine.keys import Keys
from fulfillment.streams import ensure_group, run_rounds, trim_acknowledged

log = logging.getLogger(__name__)
GROUP = "checkins"
UNAVAILABLE = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
               asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError)


class Malformed(ValueError):
    pass


class CheckinEntry(msgspec.Struct, frozen=True):
    ticket: str
    action: str
    gate: str
    by: str
    at: datetime
    offline: bool


def read_entry(fields: dict[bytes, bytes]) -> CheckinEntry:
    try:
        f = {k.decode(): v.decode() for k, v in fields.items()}
        action = f["a"]
        if action not in ("in", "undo") or not f["t"] or not f["gate"] or not f["by"]:
            raise Malformed(f"not a check-in entry: {f!r}"[:200])
        return CheckinEntry(ticket=f["t"], action=action, gate=f["gate"], by=f["by"],
                            at=datetime.fromtimestamp(int(f["at"]) / 1000, UTC),
                            offline=f.get("off") == "1")
    except (KeyError, ValueError, UnicodeDecodeError, OverflowError) as exc:
        raise Malformed(f"not a check-in entry ({exc})") from None


# Where a ticket stands after its log: checked in at the earliest check-in since its last undo
# (stream order), or valid when there is none. Stream entry ids are "<ms>-<seq>".
_SETTLE = (
    "WITH log AS (SELECT ticket_number, action, at, by_who || ' at ' || gate AS by, "
    "  ARRAY[split_part(entry_id, '-', 1)::bigint, split_part(entry_id, '-', 2)::bigint] AS pos "
    "  FROM checkins WHERE event_id = $1 AND ticket_number = ANY ($2::text[])), "
    "first_in AS (SELECT DISTINCT ON (l.ticket_number) l.ticket_number, l.at, l.by FROM log l "
    "  WHERE l.action = 'in' AND NOT EXISTS (SELECT 1 FROM log u WHERE u.action = 'undo' "
    "    AND u.ticket_number = l.ticket_number AND u.pos > l.pos) "
    "  ORDER BY l.ticket_number, l.at, l.pos) "
    "UPDATE tickets t SET status = CASE WHEN f.at IS NULL THEN 'valid' ELSE 'used' END, "
    "checked_in_at = f.at, checked_in_by = f.by, updated_at = now() "
    "FROM unnest($2::text[]) AS w (ticket_number) LEFT JOIN first_in f USING (ticket_number) "
    "WHERE t.event_id = $1 AND t.ticket_number = w.ticket_number "
    "AND t.status IN ('valid', 'used')")


async def write_checkins(conn: asyncpg.Connection, event_id: int,
                         entries: list[tuple[str, CheckinEntry]]) -> int:
    """Write entries (entry id, entry) in one transaction; returns how many were new (an entry
    written before changes nothing). Each ticket with a new entry is then brought to what its
    whole log says (`_SETTLE`), so the order entries arrive in does not matter: a check-in
    claimed from a dead worker, or written by another worker, after the undo that followed it
    leaves the ticket valid."""
    tickets = sorted({e.ticket for _, e in entries})
    async with conn.transaction():
        # one writer at a time per ticket: each then sees the entries the other committed
        await conn.execute(
            "SELECT 1 FROM tickets WHERE event_id = $1 AND ticket_number = ANY ($2::text[]) "
            "ORDER BY ticket_number FOR UPDATE", event_id, tickets)
        new = {r["entry_id"] for r in await conn.fetch(
            "INSERT INTO checkins (event_id, entry_id, ticket_number, action, gate, by_who, at, "
            "offline) SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], "
            "$6::text[], $7::timestamptz[], $8::bool[]) "
            "ON CONFLICT ON CONSTRAINT checkins_entry_key DO NOTHING RETURNING entry_id",
            event_id, *map(list, zip(*((i, e.ticket, e.action, e.gate, e.by, e.at, e.offline)
                                       for i, e in entries), strict=True)))}
        touched = sorted({e.ticket for entry_id, e in entries if entry_id in new})
        if touched:
            await conn.execute(_SETTLE, event_id, touched)
        return len(new)


class CheckinWriter:
    def __init__(self, client: redis.Redis, keys: Keys, pool: asyncpg.Pool, *,
                 consumer: str | None = None, claim_idle_ms: int = 30_000, batch: int = 500):
        self.client, self.keys, self.pool = client, keys, pool
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.claim_idle_ms, self.batch = claim_idle_ms, batch
        self._groups: set[int] = set()

    def stream(self, event_id: int) -> str:
        return self.keys.event(event_id, "checkins")

    async def _group(self, event_id: int, again: bool = False) -> None:
        if event_id in self._groups and not again:
            return
        await ensure_group(self.client, self.stream(event_id), GROUP)
        self._groups.add(event_id)

    async def round(self) -> int:
        """One pass over every event's stream; how many entries were settled."""
        done = 0
        for member in await self.client.smembers(self.keys.checkin_events()):
            event_id = int(member)
            await self._group(event_id)
            key = self.stream(event_id)
            try:
                fresh = await self.client.xreadgroup(GROUP, self.consumer, {key: ">"},
                                                     count=self.batch)
            except ResponseError as exc:  # the stream was lost (Redis restored): start again
                if "NOGROUP" not in str(exc):
                    raise
                await self._group(event_id, again=True)
                continue
            entries = [e for _, found in fresh for e in found]
            claimed = await self.client.xautoclaim(key, GROUP, self.consumer,
                                                   min_idle_time=self.claim_idle_ms,
                                                   start_id="0-0", count=self.batch)
            entries += claimed[1]
            if entries:
                done += await self.handle(event_id, entries)
                await self._trim(event_id)
        return done

    async def handle(self, event_id: int, entries: list[tuple[bytes, dict | None]]) -> int:
        """Write a batch of one event's entries in one transaction, then acknowledge them; 0
        when Postgres is away (they stay pending). Unreadable entries go to the dead letters."""
        key = self.stream(event_id)
        good: list[tuple[str, CheckinEntry]] = []
        seen: set[bytes] = set()
        for entry_id, fields in entries:
            if fields is None or entry_id in seen:  # trimmed under us, or read and claimed
                continue
            seen.add(entry_id)
            try:
                good.append((entry_id.decode(), read_entry(fields)))
            except Malformed as exc:
                log.error("check-in entry %s of event %d goes to the dead letters: %s",
                          entry_id.decode(), event_id, exc)
                await self.client.xadd(self.keys.dead_letters(), {
                    b"event": str(event_id).encode(), b"entry": entry_id,
                    b"reason": str(exc).encode(), b"stream": b"checkins"})
        if good:
            try:
                async with self.pool.acquire() as conn:
                    await write_checkins(conn, event_id, good)
            except UNAVAILABLE as exc:
                log.warning("%d check-in entries of event %d wait: Postgres unavailable (%s)",
                            len(good), event_id, type(exc).__name__)
                return 0
        await self.client.xack(key, GROUP, *[entry_id for entry_id, _ in entries])
        return len(entries)

    async def _trim(self, event_id: int) -> None:
        await trim_acknowledged(self.client, self.stream(event_id), GROUP)

    async def run(self, stop: asyncio.Event, idle: float = 0.2) -> None:
        """Rounds until `stop` is set; a failing round is logged and retried."""
        await run_rounds(self.round, stop, idle, "check-in")
