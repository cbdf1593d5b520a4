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


class DetailCache:
    """Published events' catalog side (the event, its packages and sections' prices; a seated
    event's seat map), read from Postgres at most once every `ttl` seconds per event and process.

    In a rush every buyer opens the event page first: without this, each view is three queries
    (six for a seat map) for facts that change once a day. What changes by the second (stock,
    sale states, seat states) is not cached here: callers merge it from Redis per request. A
    change a provider or admin makes through this process clears the cache at once
    (`clear`, called by the middleware below for every write to their routes); other processes
    see it within `ttl`. A missing event is not cached: publishing shows at once.
    """

    def __init__(self, catalog, ttl_seconds: float = 2.0):
        self.catalog = catalog
        self.ttl = ttl_seconds
        self._hits: dict[tuple, tuple[float, object]] = {}

    async def _cached(self, key: tuple, load):
        now = time.monotonic()
        hit = self._hits.get(key)
        if hit is not None and hit[0] >= now:
            return hit[1]
        value = await load()
        if value is not None:
            if len(self._hits) > 10_000:
                self._hits.clear()
            self._hits[key] = (now + self.ttl, value)
        return value

    async def detail(self, *, slug: str | None = None, event_id: int | None = None):
        """`Catalog.event_detail(...)` of a public event (None: no such published event)."""
        key = ("slug", slug) if slug is not None else ("id", event_id)
        return await self._cached(key, lambda: self.catalog.event_detail(slug=slug,
                                                                         event_id=event_id))

    async def seat_map(self, event_id: int):
        return await self._cached(("seats", event_id), lambda: self.catalog.seat_map(event_id))

    def clear(self) -> None:
        self._hits.clear()


WRITERS = ("/api/provider/", "/provider/", "/api/admin/", "/admin/")
