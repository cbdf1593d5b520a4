"""Live availability shown to buyers, folded into catalog answers from the inventory in Redis.

An event not loaded into Redis (nothing on sale yet) shows each package's capacity.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import msgspec
from aiohttp import web

from engine import catalog_types as t
from engine.catalog_rules import event_sale_status, sale_state
from engine.inventory import Availability
from storefront.appkeys import INVENTORY, SEAT_STATES


async def with_availability(app: web.Application, detail: t.EventDetail,
                            now: datetime | None = None) -> t.EventDetail:
    return apply_live(detail, await app[INVENTORY].availability(detail.id), now or datetime.now(UTC))


def apply_live(detail: t.EventDetail, live: Availability, now: datetime) -> t.EventDetail:
    """`detail` with the counts and sale states of `live` (pure)."""
    selling = event_sale_status(detail.status, live.status)
    packages = []
    for pkg in detail.packages:
        stock = live.packages.get(pkg.id)
        pkg = msgspec.structs.replace(pkg, available=stock.available if stock else pkg.capacity)
        state = sale_state(pkg, now, selling, draft=detail.status == "draft")
        packages.append(msgspec.structs.replace(pkg, sale_state=state))
    return msgspec.structs.replace(
        detail, packages=packages, sale_status=selling,
        available=sum(p.available for p in packages if p.is_active))


SEAT_STATES_SECONDS = 1.0


async def _seat_states(app: web.Application, event_id: int):
    """Every seat's live state, read at most once a second per event and process: a rush of seat
    map views costs Redis one read of a large venue a second, not one per view."""
    cache = app[SEAT_STATES]
    now = time.monotonic()
    hit = cache.get(event_id)
    if hit is None or hit[0] < now:
        if len(cache) > 1000:
            cache.clear()
        hit = cache[event_id] = (now + SEAT_STATES_SECONDS,
                                 await app[INVENTORY].availability(event_id, with_seats=True))
    return hit[1]


async def live_availability(app: web.Application, event_id: int) -> Availability:
    """Counts and every seat's state of an event, at most a second old (shared by this
    process's seat maps and live streams)."""
    return await _seat_states(app, event_id)


async def with_seat_states(app: web.Application, seat_map: t.SeatMap) -> t.SeatMap:
    """The seat map with each seat's live state (held seats show as reserved), at most a second
    old."""
    live = await _seat_states(app, seat_map.event_id)
    if live.status is None:
        return seat_map
    shown = {"available": "available", "blocked": "blocked", "held": "reserved", "sold": "sold"}
    sections = [msgspec.structs.replace(section, seats=[
        msgspec.structs.replace(seat, status=shown[live.seats[seat.id]]) if seat.id in live.seats else seat
        for seat in section.seats]) for section in seat_map.sections]
    return msgspec.structs.replace(seat_map, sections=sections)


async def live_summaries(app: web.Application,
                         page: t.EventPage) -> tuple[t.EventPage, dict[int, str | None]]:
    """Search results with each on-sale event's live availability (one pipelined round trip),
    and each event's sale status in the inventory (None: not loaded)."""
    inventory = app[INVENTORY]
    lives = await asyncio.gather(*[inventory.availability(e.id) for e in page.items])
    items = []
    for summary, live in zip(page.items, lives, strict=True):
        if live.status is not None:
            summary = msgspec.structs.replace(summary, available=sum(
                live.packages[p].available for p in summary.package_ids if p in live.packages))
        items.append(summary)
    return (msgspec.structs.replace(page, items=items),
            {e.id: live.status for e, live in zip(page.items, lives, strict=True)})


async def with_live_summaries(app: web.Application, page: t.EventPage) -> t.EventPage:
    """Search results with each on-sale event's live availability (one pipelined round trip)."""
    return (await live_summaries(app, page))[0]
