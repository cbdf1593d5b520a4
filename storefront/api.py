"""Declaring JSON routes: one decorator gives a route its roles, its typed inputs and its typed
answer. The wrapper decodes and checks the input (msgspec), checks the caller's role, encodes the
answer, and records the route for the OpenAPI description, which therefore cannot drift.

    @api.post("/api/provider/events", body=EventCreate, response=Event, status=201,
              roles=PROVIDERS, summary="Create an event (draft)")
    async def create_event(request, user, body): ...
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

from engine import inputs
from engine.errors import TryLater
from storefront.appkeys import USER
from storefront.auth import require
from storefront.errors import ApiError, try_later_response, validation_error

_encoder = msgspec.json.Encoder()


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_encoder.encode(obj), status=status,
                        content_type="application/json", headers=headers)


@dataclass(frozen=True)
class RouteSpec:
    method: str
    path: str
    handler: Callable[..., Awaitable[Any]]
    summary: str
    tag: str
    roles: tuple[str, ...] | None  # None: public; () any logged-in user
    body: type | None = None
    query: type | None = None
    response: Any = None
    status: int = 200
    errors: tuple[int, ...] = ()
    scan: bool = False  # open to `scan` tokens
    session_only: bool = False  # refuses API tokens
    hot: bool = False  # a token's grant may come from the per-process cache (storefront/auth.py)


@dataclass
class Api:
    """A registry of JSON routes; `install` adds them to an app's router."""

    routes: list[RouteSpec] = field(default_factory=list)

    def route(self, method: str, path: str, *, summary: str, tag: str,
              roles: tuple[str, ...] | None = None, body: type | None = None,
              query: type | None = None, response: Any = None, status: int = 200,
              errors: tuple[int, ...] = (), scan: bool = False,
              session_only: bool = False, hot: bool = False) -> Callable:
        """Declare a route. `scan`: `scan` tokens may call it too; `session_only`: API tokens
        may not (it needs a role list, `()` for any logged-in user); `hot`: a path so busy that
        a token's grant may be answered from this process's cache for a moment (the gate's
        scan; a revocation reaches other processes within `auth.HOT_TOKEN_SECONDS`)."""
        def decorate(fn: Callable[..., Awaitable[Any]]) -> Callable:
            wrapped = _wrap(fn, roles, body, query, status, scan, session_only)
            wrapped.kwika_hot = hot  # type: ignore[attr-defined]  # read by the auth middleware
            self.routes.append(RouteSpec(method, path, wrapped, summary, tag, roles, body, query,
                                         response, status, errors, scan, session_only, hot))
            return fn
        return decorate

    def get(self, path: str, **kw: Any) -> Callable:
        return self.route("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Callable:
        return self.route("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> Callable:
        return self.route("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Callable:
        return self.route("DELETE", path, **kw)

    def install(self, app: web.Application) -> None:
        for spec in self.routes:
            app.router.add_route(spec.method, spec.path, spec.handler)


def _wrap(fn: Callable[..., Awaitable[Any]], roles: tuple[str, ...] | None,
          body: type | None, query: type | None, status: int, scan: bool = False,
          session_only: bool = False) -> Callable:
    wants = set(inspect.signature(fn).parameters)
    if session_only and roles is None:
        raise ValueError("a session_only route needs roles (() for any logged-in user)")

    @functools.wraps(fn)
    async def handler(request: web.Request) -> web.StreamResponse:
        kwargs: dict[str, Any] = {}
        if roles is not None:
            user = require(request, roles, session_only=session_only)
            if "user" in wants:
                kwargs["user"] = user
        elif "user" in wants:
            kwargs["user"] = request.get(USER)
        if query is not None:
            kwargs["query"] = decode_query(request, query)
        if body is not None:
            kwargs["body"] = await decode_body(request, body)
        try:
            result = await fn(request, **kwargs)
        except TryLater as exc:  # the error middleware knows no headers; this one needs one
            return try_later_response(exc)
        if isinstance(result, web.StreamResponse):
            return result
        if result is None:
            return web.Response(status=204)
        return json_response(result, status=status)

    handler.kwika_roles = roles  # type: ignore[attr-defined]
    handler.kwika_scan = scan  # type: ignore[attr-defined]  # read by the auth middleware
    return handler


async def decode_body(request: web.Request, typ: type) -> Any:
    """The JSON body as `typ`; 415 for another content type, 400 for bad JSON, 422 for bad data
    (including text and times that `engine.inputs` refuses)."""
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    raw = await request.read()
    if not raw.strip():
        raise ApiError(400, "empty_body", "the request needs a JSON body")
    try:
        value = msgspec.json.decode(raw, type=typ)
    except msgspec.ValidationError as exc:
        # msgspec checks types while it parses, so a truncated body can fail on a field first:
        # only well-formed JSON gets a 422
        try:
            msgspec.json.decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError) as bad:
            raise ApiError(400, "malformed_json", f"the body is not valid JSON: {bad}") from None
        except RecursionError:
            raise _too_deep() from None
        raise validation_error(exc) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    except UnicodeDecodeError:
        raise ApiError(400, "malformed_json", "the body is not valid UTF-8") from None
    except RecursionError:
        raise _too_deep() from None
    return check_input(value, typ=typ)


def _too_deep() -> ApiError:
    return ApiError(400, "malformed_json", "the body is nested too deeply to be read")


def check_input(value: Any, where: str = "body", typ: Any = None) -> Any:
    """`value` (decoded as `typ`, when given), unless some text or time in it breaks the rules of
    `engine.inputs` (422)."""
    if typ is not None and not inputs.can_break_rules(typ):
        return value
    found = inputs.problems(value)
    if found:
        field, problem = next(iter(found.items()))
        raise ApiError(422, "invalid", f"{field or where}: {problem}",
                       {k or where: v for k, v in found.items()})
    return value


def convert(data: Any, typ: type, where: str = "body", strict: bool = True) -> Any:
    """Already-parsed data (query parameters, form fields) as `typ`, checked like a JSON body."""
    try:
        value = msgspec.convert(data, typ, strict=strict)
    except msgspec.ValidationError as exc:
        raise validation_error(exc, where=where) from None
    return check_input(value, where, typ)


_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}")


@functools.cache
def _time_params(typ: type) -> frozenset[str]:
    """The parameters of a query type that hold times."""
    def is_time(info: msgspec.inspect.Type) -> bool:
        if isinstance(info, msgspec.inspect.UnionType):
            return any(is_time(t) for t in info.types)
        return isinstance(info, msgspec.inspect.DateTimeType)

    return frozenset(f.encode_name for f in msgspec.inspect.type_info(typ).fields if is_time(f.type))


def decode_query(request: web.Request, typ: type) -> Any:
    """Query parameters as `typ` (strings converted to the declared types).

    A bare `YYYY-MM-DD` for a parameter listed in the type's `DAY_BOUNDS` gets that time of day
    appended (what an HTML date input sends).
    """
    day_bounds: dict[str, str] = getattr(typ, "DAY_BOUNDS", {})
    params: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        if len(values) > 1:
            raise ApiError(422, "invalid", f"{key} is given more than once", {key: "repeated"})
        if values[0] != "":
            params[key] = values[0]
            if key in day_bounds and _DAY.match(values[0]):
                params[key] = values[0] + day_bounds[key]
            elif key in _time_params(typ) and not _DATE_LIKE.match(values[0]):
                # without this, a number would be read as seconds since 1970
                problem = "Invalid RFC3339 encoded datetime"
                raise ApiError(422, "invalid", f"{key}: {problem}", {key: problem})
    return convert(params, typ, where="query", strict=False)


def check_path(request: web.Request) -> None:
    """A path segment holding a control character names nothing: 404 before any handler."""
    for name, value in request.match_info.items():
        if inputs.CONTROL.search(value):
            raise ApiError(404, "not_found", f"{name} holds a control character, so nothing has it")


def path_int(request: web.Request, name: str) -> int:
    """An integer path parameter, or a 404 naming it."""
    raw = request.match_info[name]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise ApiError(404, "not_found", f"{name} must be a positive integer id, not {raw!r}")
    return int(raw)
