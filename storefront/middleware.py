"""Middlewares: request ids and access logs, and the one place errors become responses."""

from __future__ import annotations

import logging
import secrets
import time

from aiohttp import web

from engine import errors as e
from engine.logs import request_id_var
from storefront.errors import ApiError, error_response, status_for
from storefront.render import error_page

log = logging.getLogger("kwika.access")
error_log = logging.getLogger("kwika.errors")


def wants_json(request: web.Request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


@web.middleware
async def request_id_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Give each request an id (or keep a sane incoming X-Request-Id), log it, echo it back."""
    incoming = request.headers.get("X-Request-Id", "")
    rid = incoming if 0 < len(incoming) <= 64 and incoming.isascii() and incoming.isprintable() \
        else secrets.token_hex(8)
    token = request_id_var.set(rid)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = rid
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
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Turn every refusal into the error shape (JSON routes) or an error page (pages)."""
    try:
        return await handler(request)
    except ApiError as exc:
        status, code, message, fields = exc.status, exc.code, exc.message, exc.fields
    except e.DomainError as exc:
        status, code, message, fields = status_for(exc), exc.code, exc.message, exc.fields
    except web.HTTPRequestEntityTooLarge as exc:
        status, code, fields = 413, "too_large", {}
        message = f"the request body is larger than the {exc.max_size} bytes allowed"
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        status, code, fields = exc.status, exc.reason.lower().replace(" ", "_"), {}
        message = exc.reason
        if exc.status == 404:
            message = f"no page or route at {request.path}"
        elif exc.status == 405:
            message = f"{request.method} is not allowed on {request.path}"
    except Exception:
        error_log.exception("unhandled error in %s %s", request.method, request.path)
        status, code, fields = 500, "internal", {}
        message = "something went wrong on our side; it has been logged with this request's id"
    if not wants_json(request):
        return error_page(request, status, message)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return error_response(status, code, message, fields, headers)
