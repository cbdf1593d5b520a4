"""The sandbox's typed application keys."""

from __future__ import annotations

from aiohttp import web

from storefront.sandbox.store import SandboxStore

STORE = web.AppKey("sandbox_store", SandboxStore)
