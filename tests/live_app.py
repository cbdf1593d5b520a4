"""The app served from a thread of its own (own event loop, real port), for synchronous tests
that drive it over HTTP, such as the schemathesis fuzz: their Hypothesis loop blocks the test's
thread, so the server cannot share it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from aiohttp.test_utils import TestClient, TestServer

from engine.settings import Settings
from storefront.app import create_app

T = TypeVar("T")


class LiveApp:
    """`run(coro)` runs a coroutine on the server's loop (test data through `client`)."""

    def __init__(self, settings: Settings):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="live-app", daemon=True)
        self._thread.start()
        self.client: TestClient = self.run(self._start(settings))
        self.base_url = str(self.client.make_url("")).rstrip("/")

    @staticmethod
    async def _start(settings: Settings) -> TestClient:
        client = TestClient(TestServer(create_app(settings)))
        await client.start_server()
        return client

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        try:
            self.run(self.client.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()
