"""The app factory: connections are opened and closed in cleanup contexts, never at import."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jinja2
import redis.asyncio as redis
from aiohttp import web

from engine.accounts import Accounts
from engine.catalog import Catalog
from engine.db import create_pool
from engine.inventory import Inventory
from engine.keys import Keys
from engine.onsale import connect
from engine.orders import Orders
from engine.payments.service import Payments
from engine.settings import Settings
from engine.sweeper import sweep_forever, worker_jobs
from storefront import (
    api_accounts,
    api_admin,
    api_holds,
    api_provider,
    api_public,
    dev_mailbox,
    headers,
    mytickets,
    openapi,
    ops,
    pages,
    ticket_keys,
)
from storefront.api import json_response
from storefront.appkeys import (
    ACCOUNTS,
    BACKGROUND,
    CATALOG,
    DB,
    DETAILS,
    EVENT_CACHE,
    EXECUTOR,
    GATEWAYS,
    INVENTORY,
    KEYS,
    ORDERS,
    PAYMENTS,
    REDIS,
    SEAT_STATES,
    SETTINGS,
    TEMPLATES,
)
from storefront.auth import auth_middleware
from storefront.buy import api as api_buy
from storefront.buy import live, picker, webhooks
from storefront.buy import pages as buy_pages
from storefront.event_cache import WRITERS, DetailCache, EventCache
from storefront.gate import api as api_gate
from storefront.gate import install as install_gate
from storefront.gateways import install as install_gateways
from storefront.metrics import install as install_metrics
from storefront.metrics import metrics_middleware
from storefront.middleware import error_middleware, path_middleware, request_id_middleware
from storefront.mytickets import api as api_mytickets
from storefront.room import api as api_room
from storefront.room import install as install_room
from storefront.room import provider as api_room_provider
from storefront.room import ticker as room_ticker
from storefront.sandbox import install as install_sandbox
from storefront.templating import make_environment

HERE = Path(__file__).parent
CLOSE_TIMEOUT = 10.0
API_MODULES = (api_public, api_holds, api_buy, api_accounts, api_provider, api_admin,
               api_mytickets, api_room, api_room_provider, api_gate)


def redis_client(settings: Settings, url: str | None = None) -> redis.Redis:
    """A client whose pool queues callers when all connections are busy instead of raising."""
    pool = redis.BlockingConnectionPool.from_url(
        url or settings.redis_url, max_connections=settings.redis_max_connections, timeout=10)
    return redis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes its connections


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[EXECUTOR] = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kwika-blocking")
    app[REDIS] = redis_client(settings)
    app[DB] = await create_pool(settings.database_url, settings.db_pool_min, settings.db_pool_max)
    app[INVENTORY] = Inventory(app[REDIS], app[KEYS], settings.hold_ttl_seconds)
    app[CATALOG] = connect(Catalog(app[DB]), app[INVENTORY])
    app[EVENT_CACHE] = EventCache(app[DB])
    app[DETAILS] = DetailCache(app[CATALOG])
    app[ORDERS] = Orders(app[INVENTORY])
    app[PAYMENTS] = Payments(app[DB], app[INVENTORY], app[ORDERS], app[GATEWAYS])
    app[ACCOUNTS] = Accounts(app[DB], app[REDIS], app[KEYS], app[EXECUTOR], settings)
    try:
        yield
    finally:
        await app[INVENTORY].close()
        try:  # a connection some cancelled work never gave back must not hold the exit up
            await asyncio.wait_for(app[DB].close(), CLOSE_TIMEOUT)
        except TimeoutError:
            app[DB].terminate()
        await app[REDIS].aclose()
        app[EXECUTOR].shutdown(wait=True, cancel_futures=True)


@functools.cache
def templates() -> jinja2.Environment:
    """The pages' Jinja2 environment: one per process, so each template compiles once."""
    return make_environment(HERE / "templates")


def all_routes() -> list:
    return [spec for module in API_MODULES for spec in module.api.routes]


@functools.cache
def openapi_spec() -> dict:
    """The OpenAPI document of the JSON routes: the same for every app, built once."""
    return openapi.build(all_routes())


async def _sweeper(app: web.Application) -> AsyncIterator[None]:
    """Runs the hold sweeper beside the storefront (`kwika up`); /readyz reports if it stops."""
    jobs = worker_jobs(app[CATALOG], app[INVENTORY], app[PAYMENTS])
    task = asyncio.create_task(sweep_forever(app[INVENTORY], jobs=jobs), name="sweeper")
    app[BACKGROUND]["sweeper"] = task
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


Background = Callable[[web.Application, asyncio.Event], Awaitable[None]]


def _background(name: str, run: Background):
    """A cleanup context running `run(app, stop)` beside the storefront; /readyz reports it if it
    stops. (How `kwika up` puts the fulfillment worker in one of its processes: the command
    line, which knows both, hands it in; the storefront never imports fulfillment.)"""
    async def context(app: web.Application) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(run(app, stop), name=name)
        app[BACKGROUND][name] = task
        try:
            yield
        finally:
            stop.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), CLOSE_TIMEOUT)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    return context


@web.middleware
async def catalog_writes_middleware(request: web.Request, handler) -> web.StreamResponse:
    """A provider's or admin's change shows at once in this process's cached event details
    (storefront/event_cache.py DetailCache); other processes see it within its two seconds."""
    try:
        return await handler(request)
    finally:
        if request.method not in ("GET", "HEAD", "OPTIONS") and request.path.startswith(WRITERS):
            request.app[DETAILS].clear()


def create_app(settings: Settings, *, sweeper: bool = False,
               background: dict[str, Background] | None = None) -> web.Application:
    """A storefront for `settings` (whose redis_url and database_url must be set); with
    `sweeper`, it also returns the stock of expired holds (one process of a deployment), and
    runs each of `background` (name -> `run(app, stop)`) beside it."""
    app = web.Application(
        middlewares=[metrics_middleware, request_id_middleware, error_middleware, path_middleware,
                     auth_middleware, catalog_writes_middleware],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[KEYS] = Keys(settings.redis_prefix)
    app[TEMPLATES] = templates()
    app[BACKGROUND] = {}
    app[GATEWAYS] = {}  # filled from the settings at start-up; tests may add their own
    app[SEAT_STATES] = {}
    app[live.LIVE_STREAMS] = live.LiveStreams(settings.live_streams_per_ip,
                                              settings.live_streams_per_process)
    headers.install(app)
    app.cleanup_ctx.append(_resources)
    install_gateways(app)  # the outbound HTTP session gateways use
    if settings.sandbox:
        install_sandbox(app)
    if settings.dev_mailbox:  # `kwika up` with no SMTP server: never in production
        dev_mailbox.install(app)
    if sweeper:
        app.cleanup_ctx.append(_sweeper)
    for name, run in (background or {}).items():
        app.cleanup_ctx.append(_background(name, run))
    for module in API_MODULES:
        module.api.install(app)
    install_room(app)  # after _resources: the room's resources use the inventory's runner
    app.cleanup_ctx.append(_background("room", room_ticker.run))  # admission ticks
    spec = openapi_spec()

    async def openapi_json(request: web.Request) -> web.Response:
        return json_response(spec)

    app.router.add_get("/api/openapi.json", openapi_json)
    app.router.add_routes(ops.routes)
    install_metrics(app)
    app.router.add_routes(webhooks.routes)
    ticket_keys.install(app)
    mytickets.install(app)
    install_gate(app)
    app.router.add_routes(picker.routes)
    app.router.add_routes(live.routes)
    app.router.add_routes(buy_pages.routes)
    app.router.add_routes(pages.routes)
    app.router.add_static("/static/", HERE / "static", name="static", append_version=True)
    return app
