"""A few facts about each event, cached for a few seconds per process so a rush of holds reads
Postgres once per event every few seconds, not once per request."""

from __future__ import annotations

import time
from dataclasses import dataclass

import asyncpg

from engine.errors import NotFound


@dataclass(frozen=True)
class EventFacts:
    id: int
    status: str
    currency: str
    allow_guest_checkout: bool
    requires_seating: bool
    service_fee: int = 0
    title: str = ""
    slug: str = ""
    uses_waiting_room: bool = False


class EventCache:
    def __init__(self, pool: asyncpg.Pool, ttl_seconds: float = 5.0):
        self.pool = pool
        self.ttl = ttl_seconds
        self._facts: dict[int, tuple[float, EventFacts]] = {}

    async def get(self, event_id: int) -> EventFacts:
        """Facts of a public (non-draft) event, or NotFound."""
        now = time.monotonic()
        hit = self._facts.get(event_id)
        if hit is None or hit[0] < now:
            row = await self.pool.fetchrow(
                "SELECT id, status, currency, allow_guest_checkout, requires_seating, service_fee, "
                "title, slug, uses_waiting_room FROM events WHERE id = $1 AND status <> 'draft'", event_id)
            if row is None:  # not cached: it may be published a moment from now
                raise NotFound(f"no published event with id {event_id}")
            if len(self._facts) > 10_000:
                self._facts.clear()
            hit = (now + self.ttl, EventFacts(row["id"], row["status"], row["currency"].strip(),
                                              row["allow_guest_checkout"], row["requires_seating"],
                                              row["service_fee"], row["title"], row["slug"],
                                              row["uses_waiting_room"]))
            self._facts[event_id] = hit
        return hit[1]

    def forget(self, event_id: int) -> None:
        self._facts.pop(event_id, None)
