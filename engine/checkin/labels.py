"""Names the gate shows beside a register entry: the package's name and the seat in words.
They change rarely, so each process keeps them per event for `TTL_SECONDS` (one Postgres read per
event and process that often, never one per scan)."""

from __future__ import annotations

import time

import asyncpg

TTL_SECONDS = 300.0
_MAX_EVENTS = 500


class EventLabels:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool
        self._cache: dict[int, tuple[float, dict[int, str], dict[int, str]]] = {}

    async def of(self, event_id: int) -> tuple[dict[int, str], dict[int, str]]:
        """(package id -> name, seat id -> "Section, row R, seat N") of `event_id`."""
        hit = self._cache.get(event_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1], hit[2]
        packages = {r["id"]: r["name"] for r in await self.pool.fetch(
            "SELECT id, name FROM ticket_packages WHERE event_id = $1", event_id)}
        seats = {r["id"]: (f"{r['name']}, row {r['row']}, seat {r['seat_number']}" if r["row"]
                           else f"{r['name']}, seat {r['seat_number']}")
                 for r in await self.pool.fetch(
                     'SELECT st.id, st.seat_number, st."row", sc.name FROM seats st '
                     "JOIN sections sc ON sc.id = st.section_id WHERE sc.event_id = $1", event_id)}
        if len(self._cache) > _MAX_EVENTS:
            self._cache.clear()
        self._cache[event_id] = (time.monotonic() + TTL_SECONDS, packages, seats)
        return packages, seats
