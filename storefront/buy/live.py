"""`GET /events/{event_id}/live`: an event page's live availability as Server-Sent Events.

Each `data:` line is one JSON object (format version 1):

    {"v": 1, "full": bool, "status": "on_sale" | "paused" | "closed",
     "packages": {"<id>": {"available", "state", "words", "most"}},
     "seats": {"<seat id>": "available" | "held" | "sold" | "blocked"}}

The first message is `full`: every package, and the seats that are not available (a seat not
named is available). Later ones come only when something changed, with every package and only
the seats whose state changed. The stream checks about once a second, from the availability
cached per process (storefront/availability.py: a rush of open pages costs Redis one read per
event a second), sends a comment every 15 s so proxies keep it open, stops when the client goes,
and ends after 5 minutes: the browser's EventSource reconnects by itself (`retry:`) and is
answered from fresh catalog data.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from aiohttp import web

from engine.errors import NotFound
from storefront.api import path_int
from storefront.appkeys import CATALOG
from storefront.availability import apply_live, live_availability
from storefront.buy.choosing import live_packages

routes = web.RouteTableDef()
CHECK_SECONDS = 1.0
HEARTBEAT_SECONDS = 15.0
LIFETIME_SECONDS = 300.0
RETRY_MS = 3000
SHOWN = {"available": "available", "held": "held", "sold": "sold", "blocked": "blocked"}


def _gone(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()


@routes.get(r"/events/{event_id:\d+}/live")
async def live(request: web.Request) -> web.StreamResponse:
    event_id = path_int(request, "event_id")
    detail = await request.app[CATALOG].event_detail(event_id=event_id)
    if detail is None:
        raise NotFound(f"no published event with id {event_id}")
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no"})
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    started = last_write = loop.time()
    sent_packages: dict | None = None
    sent_seats: dict[int, str] | None = None
    sent_status: str | None = None
    try:
        await response.write(f"retry: {RETRY_MS}\n\n".encode())
        while not _gone(request) and loop.time() - started < LIFETIME_SECONDS:
            availability = await live_availability(request.app, event_id)
            now = datetime.now(UTC)
            event = apply_live(detail, availability, now)
            packages = live_packages(event, now)
            seats = {sid: SHOWN.get(state, "blocked") for sid, state in availability.seats.items()}
            if sent_seats is None:
                changed = {sid: st for sid, st in seats.items() if st != "available"}
            else:
                changed = {sid: st for sid, st in seats.items() if sent_seats.get(sid, "available") != st}
            if (sent_packages is None or packages != sent_packages or changed
                    or event.sale_status != sent_status):
                message = {"v": 1, "full": sent_seats is None, "status": event.sale_status,
                           "packages": packages, "seats": {str(k): v for k, v in changed.items()}}
                await response.write(f"data: {json.dumps(message, separators=(',', ':'))}\n\n".encode())
                sent_packages, sent_seats, sent_status = packages, seats, event.sale_status
                last_write = loop.time()
            elif loop.time() - last_write >= HEARTBEAT_SECONDS:
                await response.write(b": still here\n\n")
                last_write = loop.time()
            await asyncio.sleep(CHECK_SECONDS)
    except (ConnectionResetError, ConnectionError):
        pass  # the page was closed
    return response
