"""The waiting room's storefront side (the engine side is engine/room/):

    service.py   the room of a request's event, its pass cookie, and the gate the hold,
                 best-available and checkout routes pass through
    words.py     the room's states and refusals in words for people
    api.py       the visitor's JSON routes (status, challenge, join) and the live stream (SSE)
    pages.py     the queue page
    provider.py  the provider's API and control page
    ticker.py    the admission tick every storefront process runs
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from engine.room import RoomStore, WaitingRoom
from storefront.appkeys import DB, INVENTORY, KEYS


async def _resources(app: web.Application) -> AsyncIterator[None]:
    from storefront.room.service import ROOM, ROOM_STORE

    app[ROOM] = WaitingRoom(app[INVENTORY].runner, app[KEYS])
    app[ROOM_STORE] = RoomStore(app[DB])
    yield


def install(app: web.Application) -> None:
    """The room's pages, live stream and resources (its JSON routes are API modules, and its
    ticker a background job: storefront/app.py installs them with the others)."""
    from storefront.room import api, pages, provider

    app.cleanup_ctx.append(_resources)  # after the app's own resources: it uses them
    api.install(app)
    app.router.add_routes(pages.routes)
    app.router.add_routes(provider.routes)
