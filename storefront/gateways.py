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
from storefront.appkeys import SETTINGS

HTTP = web.AppKey("gateway_http", aiohttp.ClientSession)
_REGISTRIES = web.AppKey("gateway_registries", dict)  # served address -> Gateways


def served_url(request: web.Request) -> str:
    """The address `request` was served on: the listening socket's own address and port (not
    the Host header, which the client chooses), e.g. `http://127.0.0.1:8080`."""
    sockname = request.get_extra_info("sockname")
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        host, port = str(sockname[0]), int(sockname[1])
    else:  # a Unix socket, or the connection is gone
        settings = request.app[SETTINGS]
        host, port = settings.host, settings.port
    if ":" in host:
        host = f"[{host}]"
    default_port = 443 if request.scheme == "https" else 80
    return f"{request.scheme}://{host}" + ("" if port == default_port else f":{port}")


def gateways(request: web.Request) -> Gateways:
    """The gateways configured for this app (UnknownGateway from `.get(name)` otherwise)."""
    registries = request.app[_REGISTRIES]
    self_url = served_url(request)
    found = registries.get(self_url)
    if found is None:
        found = registries[self_url] = configured(request.app[SETTINGS], request.app[HTTP],
                                                  self_url=self_url)
    return found


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
