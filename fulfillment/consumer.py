"""The fulfillment consumer: reads the events' orders streams in a consumer group and writes each
confirmed sale to Postgres (fulfillment/writer.py), then registers its tickets for the gate and
queues its delivery (tickets by email).

- An entry is acknowledged only after its transaction commits. A worker that dies mid-order
  leaves it pending; another worker claims it once it has been idle `claim_idle_ms` (XAUTOCLAIM)
  and writes it: the write is idempotent on the order number, so nothing is written twice.
- An entry that keeps failing for its own reasons goes, after `max_failures` tries, to the dead
  letters (`Keys.dead_letters`, with the reason; admins see them), and one that can never be
  written (malformed, a seat that already has a ticket) goes there at once. Nothing is dropped
  silently. Postgres being away is not the entry's fault: it waits, uncounted, and is written
  when Postgres is back.
- A stream is trimmed only below what the group has acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable

import asyncpg
import msgspec
import redis.asyncio as redis
from redis.exceptions import ResponseError

from engine.inventory import Inventory
from fulfillment.streams import ensure_group, run_rounds, trim_acknowledged
from fulfillment.writer import Entry, Malformed, read_entry, write_sale

log = logging.getLogger(__name__)
GROUP = "fulfillment"
# Postgres away, or a connection lost: the entry is not at fault and waits uncounted
UNAVAILABLE = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
               asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError)

Written = Callable[[Entry], Awaitable[None]]


class Fulfillment:
    def __init__(self, inventory: Inventory, pool: asyncpg.Pool, *, consumer: str | None = None,
                 claim_idle_ms: int = 30_000, max_failures: int = 5, batch: int = 100,
                 after_write: Written | None = None):
        self.inventory = inventory
        self.client: redis.Redis = inventory.client
        self.keys = inventory.keys
        self.pool = pool
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.claim_idle_ms = claim_idle_ms
        self.max_failures = max_failures
        self.batch = batch
        self.after_write = after_write
        self._groups: set[int] = set()

    def stream(self, event_id: int) -> str:
        return self.keys.event(event_id, "orders")

    async def _group(self, event_id: int) -> None:
        if event_id in self._groups:
            return
        await ensure_group(self.client, self.stream(event_id), GROUP)
        self._groups.add(event_id)

    async def events(self) -> list[int]:
        """The events whose streams may hold work: those on sale, and those that sold lately."""
        members = await self.client.sunion(self.keys.events_on_sale(), self.keys.selling())
        return sorted(int(m) for m in members)

    async def round(self) -> int:
        """One pass over every stream: new entries, then entries idle in dead consumers' hands.
        Returns how many entries were settled (written, seen before, or dead-lettered)."""
        done = 0
        for event_id in await self.events():
            await self._group(event_id)
            key = self.stream(event_id)
            try:
                fresh = await self.client.xreadgroup(GROUP, self.consumer, {key: ">"},
                                                     count=self.batch)
            except ResponseError as exc:  # Redis lost the stream (restored from the record since)
                if "NOGROUP" not in str(exc):
                    raise
                self._groups.discard(event_id)
                await self._group(event_id)
                fresh = await self.client.xreadgroup(GROUP, self.consumer, {key: ">"},
                                                     count=self.batch)
            for _, entries in fresh:
                for entry_id, fields in entries:
                    done += await self.handle(event_id, entry_id, fields)
            claim = await self.client.xautoclaim(key, GROUP, self.consumer,
                                                 min_idle_time=self.claim_idle_ms,
                                                 start_id="0-0", count=self.batch)
            for entry_id, fields in claim[1]:  # [next start, entries(, deleted ids on Redis 7)]
                done += await self.handle(event_id, entry_id, fields)
            await self._trim(event_id)
            await self._retire(event_id)
        return done

    async def _retire(self, event_id: int) -> None:
        """An event no longer on sale whose stream is all written leaves the selling set."""
        if (not await self.client.sismember(self.keys.events_on_sale(), event_id)
                and not (await self.client.xpending(self.stream(event_id), GROUP))["pending"]
                and await self.client.xlen(self.stream(event_id)) <= 1):
            await self.client.srem(self.keys.selling(), event_id)

    async def handle(self, event_id: int, entry_id: bytes, fields: dict[bytes, bytes] | None) -> int:
        """Write one entry; 1 when it is settled (acknowledged), 0 when it stays pending."""
        key = self.stream(event_id)
        if fields is None:  # trimmed or deleted under us: nothing to write
            await self.client.xack(key, GROUP, entry_id)
            return 1
        try:
            entry = read_entry(event_id, fields)
            async with self.pool.acquire() as conn:
                written = await write_sale(conn, entry)
        except Malformed as exc:
            await self._dead(event_id, entry_id, fields, str(exc))
            return 1
        except UNAVAILABLE as exc:
            log.warning("order entry %s of event %d waits: Postgres unavailable (%s)",
                        entry_id.decode(), event_id, type(exc).__name__)
            return 0
        except Exception as exc:
            log.exception("order entry %s of event %d failed", entry_id.decode(), event_id)
            failures = await self.client.hincrby(self.keys.fulfillment_failures(), entry_id, 1)
            if failures >= self.max_failures:
                await self._dead(event_id, entry_id, fields, f"failed {failures} times: {exc!r}")
                return 1
            return 0
        if self.after_write is not None:
            await self.after_write(entry)  # tickets to the gate, delivery queued: idempotent
        await self.client.xack(key, GROUP, entry_id)
        await self.client.hdel(self.keys.fulfillment_failures(), entry_id)
        if not written:
            log.info("order %s was written before (entry delivered again)", entry.order_number)
        return 1

    async def _dead(self, event_id: int, entry_id: bytes, fields: dict, reason: str) -> None:
        log.error("order entry %s of event %d goes to the dead letters: %s", entry_id.decode(),
                  event_id, reason)
        await self.client.xadd(self.keys.dead_letters(), {
            b"event": str(event_id).encode(), b"entry": entry_id, b"reason": reason.encode(),
            b"fields": msgspec.json.encode({k.decode(): v.decode(errors="replace")
                                            for k, v in fields.items()})})
        await self.client.xack(self.stream(event_id), GROUP, entry_id)
        await self.client.hdel(self.keys.fulfillment_failures(), entry_id)

    async def _trim(self, event_id: int) -> None:
        """Drop entries the group has acknowledged."""
        await trim_acknowledged(self.client, self.stream(event_id), GROUP)

    async def run(self, stop: asyncio.Event, idle: float = 0.2) -> None:
        """Rounds until `stop` is set; a failing round is logged and retried."""
        await run_rounds(self.round, stop, idle, "fulfillment")
