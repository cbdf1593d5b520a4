"""Building waiting rooms for tests: an event's stock loaded and its room configured in Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.inventory import Inventory
from engine.room import RoomSettings, WaitingRoom
from tests.inventory_helpers import event, package


async def room_event(inv: Inventory, room: WaitingRoom, capacity: int = 100, *,
                     rate: float = 100.0, release_in: float | None = None,
                     pass_seconds: int = 300, paused: bool = False) -> tuple[int, int]:
    """A published event with one package of `capacity`, its room on at `rate` a second and a
    release `release_in` seconds from now (None: no pre-queue). Returns (event id, package id)."""
    ev = event()
    pkg = package(ev.id, capacity=capacity, max_per_order=10)
    await inv.load(ev, [pkg], None)
    await configure(room, ev.id, rate=rate, release_in=release_in, pass_seconds=pass_seconds,
                    paused=paused)
    return ev.id, pkg.id


async def configure(room: WaitingRoom, event_id: int, *, rate: float = 100.0,
                    release_in: float | None = None, pass_seconds: int = 300,
                    paused: bool = False, enabled: bool = True) -> None:
    release = datetime.now(UTC) + timedelta(seconds=release_in) if release_in is not None else None
    await room.configure(event_id, RoomSettings(enabled=enabled, rate_per_second=rate,
                                                paused=paused, pass_seconds=pass_seconds,
                                                effective_release_at=release))


async def join(room: WaitingRoom, event_id: int, buyer: str, **kw):
    """Join as `buyer` with a fresh (unchecked) challenge nonce, as the storefront would after
    checking the proof of work."""
    import os
    import time
    return await room.join(event_id, buyer, os.urandom(16).hex(), int(time.time() * 1000) + 60_000,
                           kw.pop("client", "127.0.0.1"), kw.pop("per_minute", 0), **kw)
