"""The sandbox payment gateway, served by Kwika itself when `KWIKA_SANDBOX` is on.

A pretend gateway that behaves like a real one, so that checkout, webhooks, status lookups and
refunds run their real code paths with no keys: a JSON API (`api.py`, wire format in
engine/payments/sandbox.py), hosted payment pages with test cards, a 3-D Secure challenge, bank
transfer, USSD and mobile money (`pages.py`, templates/sandbox/), its rules (`rules.py`), its
state in Redis (`store.py`) and a background task that fires timers and delivers signed webhooks
(`delivery.py`). Kwika talks to it through engine/payments/sandbox.py like to any gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from storefront.appkeys import BACKGROUND, KEYS, REDIS, SETTINGS
from storefront.gateways import HTTP
from storefront.sandbox import api, pages
from storefront.sandbox.appkeys import STORE
from storefront.sandbox.delivery import Dispatcher
from storefront.sandbox.store import SandboxStore


async def _dispatcher(app: web.Application) -> AsyncIterator[None]:
    app[STORE] = store = SandboxStore(app[REDIS], app[KEYS], app[SETTINGS])
    task = asyncio.create_task(Dispatcher(store, app[HTTP]).run(), name="sandbox")
    app[BACKGROUND]["sandbox"] = task
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def install(app: web.Application) -> None:
    """Serve the sandbox under /sandbox and run its dispatcher (needs Redis and the app's HTTP
    session: install after those cleanup contexts)."""
    app.router.add_routes(api.routes)
    app.router.add_routes(pages.routes)
    app.cleanup_ctx.append(_dispatcher)
