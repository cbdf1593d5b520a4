"""The OpenAPI 3.1 description of every JSON route, generated from the route registry and the
same msgspec types the handlers decode and encode."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from storefront.api import RouteSpec
from storefront.errors import ErrorBody

_REASONS = {400: "Malformed request", 401: "Not logged in", 403: "Not allowed", 404: "Not found",
            409: "Conflicts with the current state", 413: "Body too large",
            415: "Body is not JSON", 422: "Invalid input",
            429: "Too many attempts; retry after Retry-After seconds",
            503: "Busy; retry after Retry-After seconds"}


# `{name}` or `{name:regex}`; the regex may itself hold `{m,n}` quantifiers
_PARAM = re.compile(r"\{(\w+)(?::((?:[^{}]|\{[^{}]*\})+))?\}")
_INTEGER_PATTERNS = {r"\d+", "[0-9]+"}
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def _path(path: str) -> str:
    """The OpenAPI form of an aiohttp route path: `{id:\\d+}` -> `{id}`."""
    return _PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


def _path_params(path: str) -> list[dict[str, Any]]:
    params = []
    for m in _PARAM.finditer(path):
        pattern = m.group(2)
        if pattern in _INTEGER_PATTERNS:
            schema: dict[str, Any] = {"type": "integer", "minimum": 0}
        elif pattern:
            schema = {"type": "string", "pattern": f"^(?:{pattern})$"}
        else:
            schema = {"type": "string"}
        params.append({"name": m.group(1), "in": "path", "required": True, "schema": schema})
    return params


def _operation_ids(routes: list[RouteSpec]) -> list[str]:
    """Unique ids: `<handler>_<method>`, prefixed with the tag (then numbered) on a clash."""
    plain = [f"{spec.handler.__name__}_{spec.method.lower()}" for spec in routes]
    ids: list[str] = []
    for spec, name in zip(routes, plain):
        candidate = name if plain.count(name) == 1 else f"{spec.tag}_{name}"
        n = 2
        unique = candidate
        while unique in ids:
            unique, n = f"{candidate}_{n}", n + 1
        ids.append(unique)
    return ids


def build(routes: list[RouteSpec], title: str = "Kwika API", version: str = "0.1.0") -> dict[str, Any]:
    types: list[Any] = [ErrorBody]
    for spec in routes:
        types.extend(x for x in (spec.body, spec.query, spec.response) if x is not None)
    schemas, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}")
    lookup = dict(zip(map(id, types), schemas))
    error_schema = lookup[id(ErrorBody)]
    paths: dict[str, dict[str, Any]] = {}
    for spec, operation_id in zip(routes, _operation_ids(routes)):
        path = _path(spec.path)
        op: dict[str, Any] = {
            "summary": spec.summary,
            "operationId": operation_id,
            "tags": [spec.tag],
            "responses": {},
        }
        params = _path_params(spec.path)
        if spec.query is not None:
            query_schema = components[spec.query.__name__]
            required = set(query_schema.get("required", []))
            for name, schema in query_schema["properties"].items():
                param = {"name": name, "in": "query", "required": name in required,
                         "schema": schema}
                if name not in required:
                    param["allowEmptyValue"] = True  # `?q=` means the same as no q (HTML forms)
                params.append(param)
        if params:
            op["parameters"] = params
        if spec.body is not None:
            op["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": lookup[id(spec.body)]}}}
        if spec.response is not None:
            op["responses"][str(spec.status)] = {
                "description": "Created" if spec.status == 201 else "OK",
                "content": {"application/json": {"schema": lookup[id(spec.response)]}}}
        else:
            op["responses"]["204"] = {"description": "Done"}
        # what the framework itself may answer, whether or not the route lists it
        implied: set[int] = set()
        if spec.roles is not None:
            implied.add(401)
        if spec.roles or spec.method in _UNSAFE:
            implied.add(403)  # a missing role, or a cookie-borne write without its CSRF token
        if spec.body is not None:
            implied |= {400, 413, 415, 422}
        if spec.query is not None or _PARAM.search(spec.path):
            implied |= {404, 422} if spec.query is not None else {404}
        for status in sorted(set(spec.errors) | implied):
            op["responses"][str(status)] = {"description": _REASONS.get(status, "Error"), "content": {
                "application/json": {"schema": error_schema}}}
        if spec.roles is not None:
            op["security"] = [{"session": []}, {"bearer": []}]
            if spec.roles:
                op["description"] = "Roles: " + ", ".join(spec.roles)
        paths.setdefault(path, {})[spec.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version,
                 "description": "Money is in minor units; times are ISO 8601 with offsets. "
                                "Errors: {error, message, fields}."},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "kwika_session",
                            "description": "Writes also need the X-CSRF-Token header"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }
