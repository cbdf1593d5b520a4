"""Consumer-group plumbing the stream consumers share (orders, check-ins, deliveries)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as redis
from redis.exceptions import ResponseError

log = logging.getLogger(__name__)


async def ensure_group(client: redis.Redis, stream: str, group: str) -> None:
    """Create `group` on `stream` (and the stream) unless it exists."""
    try:
        await client.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def trim_acknowledged(client: redis.Redis, stream: str, group: str) -> None:
    """Drop what `group` acknowledged: everything below its oldest pending entry, or below the
    last delivered one when none is pending (MINID keeps that one: acknowledged but harmless,
    the next trim takes it)."""
    pending = await client.xpending(stream, group)
    if pending["pending"]:
        floor = pending["min"]
    else:
        groups = await client.xinfo_groups(stream)
        found = next((g for g in groups if g["name"] in (group, group.encode())), None)
        if found is None or found["last-delivered-id"] in (b"0-0", "0-0"):
            return
        floor = found["last-delivered-id"]
    await client.xtrim(stream, minid=floor, approximate=False)


async def run_rounds(one_round: Callable[[], Awaitable[int]], stop: asyncio.Event, idle: float,
                     what: str) -> None:
    """`one_round()` until `stop` is set, resting `idle` seconds after a round that settled
    nothing; a failing round (Redis away for a moment) is logged and the next one retries."""
    while not stop.is_set():
        try:
            done = await one_round()
        except Exception:
            log.exception("%s round failed", what)
            done = 0
        if not done and not stop.is_set():
            await asyncio.sleep(idle)
