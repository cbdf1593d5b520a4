"""The admission tick: every storefront process ticks every room that is on, every
KWIKA_ROOM_TICK_MS. Any number of processes may: the tick script shares one budget among them
(scripts/lua/room_tick.lua). A failing tick is logged and tried again at the next round; the
task itself only ends when the app stops, and `/readyz` reports it (`room`) if it does."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from engine import metrics
from engine.room import WaitingRoom
from storefront.appkeys import SETTINGS
from storefront.room.service import ROOM

log = logging.getLogger(__name__)


async def tick_rooms(room: WaitingRoom) -> int:
    """One round: tick every room that is on; how many visitors it admitted."""
    admitted = 0
    for event_id in await room.rooms_on():
        try:
            now = (await room.tick(event_id)).admitted_now
            admitted += now
            if now:
                metrics.ROOM_ADMITTED.inc(now)
        except Exception:  # one room's failure must not stop the others' ticks
            log.exception("waiting-room tick of event %s failed", event_id)
    return admitted


async def tick_forever(room: WaitingRoom, every: float, stop: asyncio.Event) -> None:
    """Tick every `every` seconds until `stop` is set. (A stop event rather than cancellation:
    a cancel that lands inside a Redis call can come out as a connection error, which the loop
    would take for a passing failure.)"""
    while not stop.is_set():
        try:
            await tick_rooms(room)
        except Exception:  # Redis away for a moment: the next round tries again
            log.exception("waiting-room ticks failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


async def run(app: web.Application, stop: asyncio.Event) -> None:
    """The storefront's background job (storefront/app.py runs it as `room`)."""
    await tick_forever(app[ROOM], app[SETTINGS].room_tick_ms / 1000, stop)
