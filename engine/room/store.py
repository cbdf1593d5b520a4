"""The provider's waiting-room settings, kept in Postgres (migration 0008): the record Redis's
copy is made from (WaitingRoom.configure) whenever it is changed or found missing."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import asyncpg
import msgspec
from msgspec import Meta

from engine.errors import NotFound

Rate = Annotated[float, Meta(ge=0.01, le=100_000)]
Difficulty = Annotated[int, Meta(ge=0, le=22)]
PassSeconds = Annotated[int, Meta(ge=10, le=3600)]


class RoomSettings(msgspec.Struct, kw_only=True):
    """One event's room. `release_at` None: the earliest opening among its packages (none: no
    pre-queue, everyone first come, first served)."""

    enabled: bool = False
    rate_per_second: Rate = 10.0
    paused: bool = False
    difficulty: Difficulty = 14
    release_at: datetime | None = None
    pass_seconds: PassSeconds = 300
    effective_release_at: datetime | None = None  # what the room uses (read only)


class RoomUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A change to a room's settings; fields left out stay as they are."""

    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    rate_per_second: Rate | msgspec.UnsetType = msgspec.UNSET
    paused: bool | msgspec.UnsetType = msgspec.UNSET
    difficulty: Difficulty | msgspec.UnsetType = msgspec.UNSET
    release_at: datetime | None | msgspec.UnsetType = msgspec.UNSET
    pass_seconds: PassSeconds | msgspec.UnsetType = msgspec.UNSET


_SELECT = """
SELECT e.uses_waiting_room AS enabled, w.rate_per_second, w.paused, w.difficulty, w.release_at,
       w.pass_seconds,
       COALESCE(w.release_at, (SELECT min(opens_at) FROM ticket_packages p
                               WHERE p.event_id = e.id)) AS effective_release_at
FROM events e LEFT JOIN waiting_rooms w ON w.event_id = e.id WHERE e.id = $1"""


def _settings(row: asyncpg.Record) -> RoomSettings:
    defaults = RoomSettings()
    return RoomSettings(
        enabled=row["enabled"],
        rate_per_second=float(row["rate_per_second"] if row["rate_per_second"] is not None
                              else defaults.rate_per_second),
        paused=bool(row["paused"]),
        difficulty=row["difficulty"] if row["difficulty"] is not None else defaults.difficulty,
        release_at=row["release_at"],
        pass_seconds=row["pass_seconds"] or defaults.pass_seconds,
        effective_release_at=row["effective_release_at"])


class RoomStore:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    async def get(self, event_id: int) -> RoomSettings:
        """The room of an event (defaults when never set), or NotFound."""
        row = await self.pool.fetchrow(_SELECT, event_id)
        if row is None:
            raise NotFound(f"no event {event_id}")
        return _settings(row)

    async def update(self, event_id: int, change: RoomUpdate) -> RoomSettings:
        """Apply `change` in one transaction (the event's `uses_waiting_room` too)."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(_SELECT + " FOR UPDATE OF e", event_id)
            if row is None:
                raise NotFound(f"no event {event_id}")
            now = _settings(row)
            merged = {f: getattr(change, f) if getattr(change, f) is not msgspec.UNSET
                      else getattr(now, f) for f in RoomUpdate.__struct_fields__}
            if merged["enabled"] != now.enabled:
                await conn.execute("UPDATE events SET uses_waiting_room = $2 WHERE id = $1",
                                   event_id, merged["enabled"])
            await conn.execute(
                "INSERT INTO waiting_rooms (event_id, rate_per_second, paused, difficulty, "
                "release_at, pass_seconds) VALUES ($1, $2, $3, $4, $5, $6) "
                "ON CONFLICT (event_id) DO UPDATE SET rate_per_second = $2, paused = $3, "
                "difficulty = $4, release_at = $5, pass_seconds = $6, updated_at = now()",
                event_id, merged["rate_per_second"], merged["paused"], merged["difficulty"],
                merged["release_at"], merged["pass_seconds"])
            row = await conn.fetchrow(_SELECT, event_id)
        return _settings(row)
