"""Test helpers for the sandbox gateway: the app with the sandbox on, served on a real port, the
adapter pointed at it, and a small server standing in for Kwika's webhook endpoint."""

from __future__ import annotations

import asyncio
import functools
import html
import inspect
import itertools
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from engine.keys import Keys
from engine.payments.base import Customer, PaymentRequest, WebhookEvent
from engine.payments.registry import configured
from engine.payments.sandbox import Event, SandboxGateway
from engine.settings import Settings
from storefront.app import create_app
from storefront.appkeys import REDIS

_seq = itertools.count(1)
PAGE_TIMEOUT = 10.0


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()
    answered: int

    @property
    def event(self) -> Event:
        return msgspec.json.decode(self.body, type=Event)


@dataclass
class Hook:
    """Records every delivery; answers the next of `answers`, then `always`."""

    url: str = ""
    deliveries: list[Received] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    always: int = 200
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        answer = self.answers.pop(0) if self.answers else self.always
        async with self._changed:
            self.deliveries.append(Received(dict(request.headers), body, time.monotonic(), answer))
            self._changed.notify_all()
        return web.Response(status=answer, text="ok" if answer < 300 else "no")

    def of(self, reference: str) -> list[Received]:
        return [d for d in self.deliveries if d.event.data.reference == reference]

    async def wait(self, predicate: Callable[[], bool], timeout: float = PAGE_TIMEOUT) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    async def wait_for(self, reference: str, count: int, timeout: float = PAGE_TIMEOUT
                       ) -> list[Received]:
        """The first `count` deliveries for `reference`, once that many have arrived."""
        await self.wait(lambda: len(self.of(reference)) >= count, timeout)
        return self.of(reference)[:count]


def add_hook(app: web.Application, hook: Hook) -> None:
    app.router.add_post("/webhooks/sandbox", hook.handle)


async def return_page(request: web.Request) -> web.Response:
    """Stands in for the checkout's return page."""
    return web.Response(text=f"<!doctype html><title>Back</title><h1>Back at the shop: "
                        f"{html.escape(request.query.get('status', ''))}</h1>",
                        content_type="text/html")


@dataclass
class Sandbox:
    """The app with the sandbox on (`client`), the adapter (`gateway`) and the webhook stand-in."""

    client: TestClient
    gateway: SandboxGateway
    settings: Settings
    hook: Hook

    def request(self, method: str = "card", *, phone: str | None = "+265991234567",
                network: str | None = None, amount: int = 6_000_000,
                currency: str = "MWK") -> PaymentRequest:
        n = next(_seq)
        return PaymentRequest(
            reference=f"ORD-{n}-t{time.time_ns() % 10**6}-1", order_number=f"ORD-{n}", event_id=n,
            amount=amount, currency=currency, method=method,  # type: ignore[arg-type]
            customer=Customer(name="Chikondi Banda", email="chikondi@example.test", phone=phone),
            return_url=str(self.client.make_url("/test/return")), description="2 × General",
            network=network or ("mpesa" if method == "mobile_money" else None))

    async def get(self, url: str) -> tuple[int, str]:
        """GET a page of the app by its absolute or relative URL."""
        parts = urlsplit(url)
        resp = await self.client.get(parts.path + (f"?{parts.query}" if parts.query else ""))
        return resp.status, await resp.text()

    async def submit(self, page_url: str, action: str, token: str | None = None,
                     **fields: str) -> aiohttp.ClientResponse:
        """Post one of the hosted page's forms, as a browser would: with the CSRF token of the
        page as it is now, or with `token` (a form kept from earlier, replayed)."""
        path = urlsplit(page_url).path
        if token is None:
            token = csrf((await self.get(path))[1])
        return await self.client.post(f"{path}/{action}", data={"csrf_token": token, **fields},
                                      allow_redirects=False)

    async def sandbox_keys(self, kind: str) -> list[bytes]:
        """The sandbox's `webhook` (one per event made) or `payment` keys in Redis."""
        keys = Keys(self.settings.redis_prefix)
        pattern = keys.sandbox_webhook("*") if kind == "webhook" else keys.sandbox_payment("*")
        return [k async for k in self.client.server.app[REDIS].scan_iter(match=pattern)]

    def parse(self, delivery: Received) -> WebhookEvent:
        return self.gateway.parse_webhook(delivery.headers, delivery.body, {}, time.time())


async def eventually(condition: Callable[[], Awaitable[bool] | bool], timeout: float = PAGE_TIMEOUT,
                     ) -> None:
    """Wait until `condition` holds (checked every 20 ms), failing after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while True:
            result = condition()
            if await result if inspect.isawaitable(result) else result:
                return
            await asyncio.sleep(0.02)


def csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def meta_refresh(page: str) -> str | None:
    match = re.search(r'<meta http-equiv="refresh" content="\d+;url=([^"]+)">', page)
    return html.unescape(match.group(1)) if match else None


@asynccontextmanager
async def hook_server() -> AsyncIterator[Hook]:
    """A stand-in for Kwika's webhook endpoint on a port of its own."""
    found = Hook()
    app = web.Application()
    add_hook(app, found)
    async with TestServer(app) as server:
        found.url = str(server.make_url("/webhooks/sandbox"))
        yield found


FAST = {"sandbox": True, "sandbox_settle_ms": 100, "sandbox_push_timeout_ms": 2000,
        "sandbox_webhook_backoff_ms": 20}


async def start(stack: AsyncExitStack, settings: Settings, hook: Hook, **overrides) -> Sandbox:
    """The app with the sandbox on (fast delays, webhooks to `hook`, unless `overrides` say
    otherwise: `sandbox_webhook_url=None` sends them back to the app, where `hook` listens at
    /webhooks/sandbox), served on a real port, and the adapter from the registry. `stack`
    stops both."""
    sandbox_settings = msgspec.structs.replace(
        settings, **(FAST | {"sandbox_webhook_url": hook.url} | overrides))
    app = create_app(sandbox_settings)
    app.router.add_get("/test/return", return_page)
    if sandbox_settings.sandbox_webhook_url is None:
        add_hook(app, hook)
    client = await stack.enter_async_context(TestClient(TestServer(app)))
    session = await stack.enter_async_context(
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()))
    gateways = configured(sandbox_settings, session, self_url=str(client.make_url("")).rstrip("/"))
    return Sandbox(client, gateways.get("sandbox"), sandbox_settings, hook)  # type: ignore[arg-type]


StartSandbox = Callable[..., Awaitable[Sandbox]]


# pytest fixtures for the modules that import them (by these names: `hook`, `start_sandbox`)
@pytest.fixture(name="hook")
async def hook_fixture() -> AsyncIterator[Hook]:
    async with hook_server() as found:
        yield found


@pytest.fixture(name="start_sandbox")
async def start_sandbox_fixture(settings: Settings, hook: Hook) -> AsyncIterator[StartSandbox]:
    """Start the app with the sandbox on; keyword arguments are settings."""
    async with AsyncExitStack() as stack:
        yield functools.partial(start, stack, settings, hook)
