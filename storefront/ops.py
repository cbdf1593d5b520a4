"""Operations routes: liveness, readiness and the OpenAPI document."""

from __future__ import annotations

import asyncio

from aiohttp import web

from storefront.api import json_response
from storefront.appkeys import BACKGROUND, DB, REDIS

routes = web.RouteTableDef()
READY_TIMEOUT = 2.0


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """The process is up and serving."""
    return json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Redis and Postgres answer (and background tasks are alive): safe to send traffic."""
    checks: dict[str, str] = {}

    async def check(name: str, probe) -> None:
        try:
            await asyncio.wait_for(probe(), READY_TIMEOUT)
            checks[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready; say which
            checks[name] = f"error: {type(exc).__name__}"

    await asyncio.gather(
        check("redis", request.app[REDIS].ping),
        check("postgres", lambda: request.app[DB].fetchval("SELECT 1")),
    )
    for name, task in request.app.get(BACKGROUND, {}).items():
        checks[name] = "ok" if not task.done() else "error: stopped"
    ok = all(v == "ok" for v in checks.values())
    return json_response({"status": "ok" if ok else "unavailable", "checks": checks},
                         status=200 if ok else 503)

