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

Each stream holds a task and a socket, so how many are open is bounded, counted in this process:
`KWIKA_LIVE_STREAMS_PER_IP` (20) per client address (its bucket, storefront/client.py), beyond
which a new one is 429, and `KWIKA_LIVE_STREAMS_PER_PROCESS` (2,000) in all, beyond which it is
503; both with `Retry-After` and words (the page then polls instead). With N storefront processes
one address may hold up to N times its share. A client that stops reading is dropped: a write
that has not gone through in `WRITE_TIMEOUT_SECONDS` ends its stream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web

from engine.errors import Busy, NotFound, RateLimited, TryLater
from storefront.api import path_int
from storefront.appkeys import CATALOG
from storefront.availability import apply_live, live_availability
from storefront.buy.choosing import live_packages
from storefront.client import client_bucket
from storefront.errors import try_later_response

routes = web.RouteTableDef()
CHECK_SECONDS = 1.0
HEARTBEAT_SECONDS = 15.0
LIFETIME_SECONDS = 300.0
RETRY_MS = 3000
WRITE_TIMEOUT_SECONDS = 10.0
REFUSED_RETRY_SECONDS = 30
SHOWN = {"available": "available", "held": "held", "sold": "sold", "blocked": "blocked"}


class LiveStreams:
    """The live streams open in this process, in all and per client address (module docstring)."""

    def __init__(self, per_address: int, per_process: int):
        self.per_address, self.per_process = per_address, per_process
        self.total = 0
        self.by_address: dict[str, int] = {}

    def enter(self, address: str) -> None:
        """Count one more stream for `address`, or refuse it (RateLimited, Busy)."""
        if self.by_address.get(address, 0) >= self.per_address:
            raise RateLimited("Too many live updates are open from your address; close some tabs "
                              "or wait a little (the page keeps refreshing meanwhile).",
                              retry_after=REFUSED_RETRY_SECONDS)
        if self.total >= self.per_process:
            raise Busy("Live updates are busy right now; the page keeps refreshing meanwhile.",
                       retry_after=REFUSED_RETRY_SECONDS)
        self.total += 1
        self.by_address[address] = self.by_address.get(address, 0) + 1

    def leave(self, address: str) -> None:
        self.total -= 1
        left = self.by_address.get(address, 1) - 1
        if left > 0:
            self.by_address[address] = left
        else:
            self.by_address.pop(address, None)

    async def serve(self, request: web.Request,
                    stream: Callable[[], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """Run the stream `stream()` opens, counted against the caps for the caller's address:
        beyond them, 429 (this address) or 503 (this process) with Retry-After."""
        address = client_bucket(request)
        try:
            self.enter(address)
        except TryLater as exc:
            return try_later_response(exc)
        try:
            return await stream()
        finally:
            self.leave(address)


LIVE_STREAMS = web.AppKey("live_streams", LiveStreams)


def gone(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()


@routes.get(r"/events/{event_id:\d+}/live")
async def live(request: web.Request) -> web.StreamResponse:
    event_id = path_int(request, "event_id")
    detail = await request.app[CATALOG].event_detail(event_id=event_id)
    if detail is None:
        raise NotFound(f"no published event with id {event_id}")
    return await request.app[LIVE_STREAMS].serve(request, lambda: _stream(request, event_id, detail))


async def write(request: web.Request, response: web.StreamResponse, data: bytes) -> None:
    """One write, or the client is dropped: one that stops reading fills the buffers and the
    write waits; after WRITE_TIMEOUT_SECONDS the connection is cut (ConnectionResetError)."""
    try:
        await asyncio.wait_for(response.write(data), WRITE_TIMEOUT_SECONDS)
    except TimeoutError:
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError("the client stopped reading its live stream") from None


async def open_stream(request: web.Request) -> web.StreamResponse:
    """A Server-Sent Events answer, prepared (its headers sent)."""
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no"})
    await response.prepare(request)
    return response


async def _stream(request: web.Request, event_id: int, detail) -> web.StreamResponse:
    response = await open_stream(request)
    loop = asyncio.get_running_loop()
    started = last_write = loop.time()
    sent_packages: dict | None = None
    sent_seats: dict[int, str] | None = None
    sent_status: str | None = None
    try:
        await write(request, response, f"retry: {RETRY_MS}\n\n".encode())
        while not gone(request) and loop.time() - started < LIFETIME_SECONDS:
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
                await write(request, response,
                             f"data: {json.dumps(message, separators=(',', ':'))}\n\n".encode())
                sent_packages, sent_seats, sent_status = packages, seats, event.sale_status
                last_write = loop.time()
            elif loop.time() - last_write >= HEARTBEAT_SECONDS:
                await write(request, response, b": still here\n\n")
                last_write = loop.time()
            await asyncio.sleep(CHECK_SECONDS)
    except (ConnectionResetError, ConnectionError):
        pass  # the page was closed
    return response
