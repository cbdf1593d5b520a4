"""The payment gateways of this app, for handlers: `gateways(request).get("sandbox")`.

The app owns one outbound HTTP session (cookies off) for gateway calls and the sandbox's webhook
deliveries, opened and closed in a cleanup context. The registry itself is engine/payments/
registry.py; here it is built per address the app is served on, because the sandbox adapter
calls this very app unless `KWIKA_SANDBOX_URL` names another.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from engine.payments.registry import Gateways, configured
from storefront.appkeys import GATEWAYS, SETTINGS
from storefront.urls import served_url

HTTP = web.AppKey("gateway_http", aiohttp.ClientSession)
_REGISTRIES = web.AppKey("gateway_registries", dict)  # served address -> Gateways


def gateways(request: web.Request) -> Gateways:
    """The gateways configured for this app (UnknownGateway from `.get(name)` otherwise)."""
    registries = request.app[_REGISTRIES]
    self_url = served_url(request)
    found = registries.get(self_url)
    if found is None:
        found = registries[self_url] = configured(request.app[SETTINGS], request.app[HTTP],
                                                  self_url=self_url)
    return found


def payment_gateways(request: web.Request) -> dict:
    """The app's gateways by name, for the payments desk (engine/payments/service.py) which the
    checkout routes, the webhooks and the worker's rounds share: filled from the registry on the
    first request that needs one (the sandbox adapter must know the address served)."""
    table = request.app[GATEWAYS]
    if not table:
        table.update({g.name: g for g in gateways(request)})
    return table


async def _http(app: web.Application) -> AsyncIterator[None]:
    app[HTTP] = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(),
                                      timeout=aiohttp.ClientTimeout(total=30))
    app[_REGISTRIES] = {}
    try:
        yield
    finally:
        await app[HTTP].close()


def install(app: web.Application) -> None:
    app.cleanup_ctx.append(_http)
