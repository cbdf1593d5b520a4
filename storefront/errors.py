"""The one error shape of the JSON API and the middleware that produces it.

`{"error": code, "message": text, "fields": {field: problem}}` with a 4xx status for anything the
caller can fix. Domain errors from `engine` map to statuses here, once.
"""

from __future__ import annotations

import re

import msgspec
from aiohttp import web

from engine import errors as e
from engine import inputs


class ErrorBody(msgspec.Struct):
    error: str
    message: str
    fields: dict[str, str] = {}


class ApiError(Exception):
    """An HTTP-level refusal raised by storefront code (bad JSON, missing auth, ...)."""

    def __init__(self, status: int, code: str, message: str, fields: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields or {}
        self.headers = headers or {}


STATUS: dict[type[e.DomainError], int] = {
    e.NotFound: 404,
    e.Forbidden: 403,
    e.Unauthenticated: 401,
    e.InvalidTransition: 409,
    e.Conflict: 409,
    e.Invalid: 422,
    e.RateLimited: 429,
    e.Busy: 503,
}


def error_response(status: int, code: str, message: str, fields: dict[str, str] | None = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    body = msgspec.json.encode(ErrorBody(code, message, fields or {}))
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


# msgspec names the regex a value failed; these patterns have words
_PATTERN_WORDS = {f"Expected `str` matching regex {inputs.ONE_LINE!r}": inputs.ONE_LINE_PROBLEM}


def validation_error(exc: msgspec.ValidationError, where: str = "body") -> ApiError:
    """msgspec says "Expected `int`, got `str` - at `$.price`": name the field."""
    text = str(exc)
    match = re.search(r" - at `\$\.?([^`]*)`$", text)
    if match:
        field = match.group(1) or where
        message = _PATTERN_WORDS.get(text[: match.start()], text[: match.start()])
        return ApiError(422, "invalid", f"{field}: {message}", {field: message})
    match = re.match(r"Object contains unknown field `([^`]+)`", text)
    if match:
        return ApiError(422, "invalid", f"unknown field {match.group(1)!r}",
                        {match.group(1): "unknown field"})
    match = re.match(r"Object missing required field `([^`]+)`", text)
    if match:
        return ApiError(422, "invalid", f"{match.group(1)} is required", {match.group(1): "required"})
    return ApiError(422, "invalid", text)


def try_later_response(exc: e.TryLater) -> web.Response:
    """The error shape of a refusal that lifts by itself, with its `Retry-After`."""
    return error_response(status_for(exc), exc.code, exc.message, exc.fields,
                          headers={"Retry-After": str(exc.retry_after)})


def status_for(exc: e.DomainError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400
