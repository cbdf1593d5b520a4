"""`GET /events/{event_id}/gate/live`: the gate's counts as Server-Sent Events, for the scanner
page and a door manager's screen. Each `data:` line is JSON (format version 1):

    {"v": 1, "checked_in": n, "expected": n, "gates": {"<gate>": n}}

sent at once and then whenever it changes (checked about once a second), a comment every 15 s,
and the stream ends after 5 minutes (EventSource reconnects by itself). Open streams are counted
with the event pages' (storefront/buy/live.py: per address and per process, 429 / 503 with
Retry-After beyond), and a client that stops reading is dropped. Scan tokens may open it.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from storefront.api import path_int
from storefront.auth import require
from storefront.buy.live import LIVE_STREAMS, write
from storefront.gate.counts import counts_of
from storefront.gate.resources import gate_role

routes = web.RouteTableDef()
CHECK_SECONDS = 1.0
HEARTBEAT_SECONDS = 15.0
LIFETIME_SECONDS = 300.0


@routes.get(r"/events/{event_id:\d+}/gate/live")
async def gate_live(request: web.Request) -> web.StreamResponse:
    event_id = path_int(request, "event_id")
    await gate_role(request, require(request, ()), event_id)
    return await request.app[LIVE_STREAMS].serve(request, lambda: _stream(request, event_id))


gate_live.kwika_scan = True  # type: ignore[attr-defined]  # scan tokens may read it


async def _stream(request: web.Request, event_id: int) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    started = last = loop.time()
    sent = None
    try:
        await write(request, response, b"retry: 3000\n\n")
        while (request.transport is not None and not request.transport.is_closing()
               and loop.time() - started < LIFETIME_SECONDS):
            now = {"v": 1, **await counts_of(request.app, event_id)}
            if now != sent:
                await write(request, response,
                             f"data: {json.dumps(now, separators=(',', ':'))}\n\n".encode())
                sent, last = now, loop.time()
            elif loop.time() - last >= HEARTBEAT_SECONDS:
                await write(request, response, b": still here\n\n")
                last = loop.time()
            await asyncio.sleep(CHECK_SECONDS)
    except ConnectionError:
        pass
    return response



