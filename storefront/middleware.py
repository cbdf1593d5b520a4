"""Middlewares: request ids and access logs, and the one place errors become responses."""

from __future__ import annotations

import logging
import re
import secrets
import time

from aiohttp import web

from engine import errors as e
from engine.logs import request_id_var
from storefront.api import check_path
from storefront.appkeys import SETTINGS
from storefront.errors import ApiError, error_response, status_for
from storefront.render import error_page

log = logging.getLogger("kwika.access")
error_log = logging.getLogger("kwika.errors")
# an upstream proxy's id is kept when it is short and plain (no spaces, quotes or controls)
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=@-]{0,63}")


def wants_json(request: web.Request) -> bool:
    return (request.path == "/api" or request.path.startswith("/api/")
            or "application/json" in request.headers.get("Accept", ""))


@web.middleware
async def request_id_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Give each request an id (or keep a sane incoming X-Request-Id), log it, echo it back."""
    incoming = request.headers.get("X-Request-Id", "")
    rid = incoming if _SANE_REQUEST_ID.fullmatch(incoming) else secrets.token_hex(8)
    token = request_id_var.set(rid)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = rid
        if not response.prepared:  # a stream (SSE) has sent its headers already
            # the server's own time for the request, for clients and benchmarks to read
            response.headers["Server-Timing"] = (
                f"app;dur={(time.perf_counter() - started) * 1000:.3f}")
        return response
    except web.HTTPException as exc:
        status = exc.status
        exc.headers["X-Request-Id"] = rid
        raise
    finally:
        log.info("%s %s %s", request.method, request.path, status, extra={
            "method": request.method, "path": request.path, "status": status,
            "ms": round((time.perf_counter() - started) * 1000, 2)})
        request_id_var.reset(token)


@web.middleware
async def path_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Refuse path segments that hold control characters before any handler reads them."""
    check_path(request)
    return await handler(request)


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Turn every refusal into the error shape (JSON routes) or an error page (pages)."""
    extra_headers: dict[str, str] = {}
    try:
        return await handler(request)
    except ApiError as exc:
        status, code, message, fields = exc.status, exc.code, exc.message, exc.fields
        extra_headers.update(exc.headers)
    except e.DomainError as exc:
        status, code, message, fields = status_for(exc), exc.code, exc.message, exc.fields
    except web.HTTPRequestEntityTooLarge:  # it carries no size; the limit is a setting
        status, code, fields = 413, "too_large", {}
        limit = request.app[SETTINGS].max_body_bytes
        message = f"the request body is larger than the {limit} bytes allowed"
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 405 and "Allow" in exc.headers:
            extra_headers["Allow"] = exc.headers["Allow"]
        status, code, fields = exc.status, exc.reason.lower().replace(" ", "_"), {}
        message = exc.reason
        if exc.status == 404:
            message = f"no page or route at {request.path}"
        elif exc.status == 405:
            message = f"{request.method} is not allowed on {request.path}"
    except Exception:  # noqa: BLE001 - the one place unexpected errors become a 500
        error_log.exception("unhandled error in %s %s", request.method, request.path)
        status, code, fields = 500, "internal", {}
        message = "something went wrong on our side; it has been logged with this request's id"
    if not wants_json(request):
        response = error_page(request, status, message, fields)
        response.headers.update(extra_headers)
        return response
    if status == 401:
        extra_headers["WWW-Authenticate"] = "Bearer"
    return error_response(status, code, message, fields, extra_headers or None)
