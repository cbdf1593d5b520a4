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
            415: "Body is not JSON", 422: "Invalid input"}


def _path(path: str) -> str:
    return re.sub(r"\{(\w+):[^}]+\}", r"{\1}", path)


def build(routes: list[RouteSpec], title: str = "Kwika API", version: str = "0.1.0") -> dict[str, Any]:
    types: list[Any] = [ErrorBody]
    for spec in routes:
        types.extend(x for x in (spec.body, spec.query, spec.response) if x is not None)
    schemas, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}")
    lookup = dict(zip(map(id, types), schemas))
    error_schema = lookup[id(ErrorBody)]
    paths: dict[str, dict[str, Any]] = {}
    for spec in routes:
        path = _path(spec.path)
        op: dict[str, Any] = {
            "summary": spec.summary,
            "operationId": spec.handler.__name__ + "_" + spec.method.lower(),
            "tags": [spec.tag],
            "responses": {},
        }
        params = [{"name": n, "in": "path", "required": True,
                   "schema": {"type": "integer"} if ":" in spec.path.split("{" + n)[1].split("}")[0]
                   else {"type": "string"}}
                  for n in re.findall(r"\{(\w+)", spec.path)]
        if spec.query is not None:
            query_schema = components[spec.query.__name__]
            required = set(query_schema.get("required", []))
            for name, schema in query_schema["properties"].items():
                params.append({"name": name, "in": "query", "required": name in required,
                               "schema": schema})
        if params:
            op["parameters"] = params
        if spec.body is not None:
            op["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": lookup[id(spec.body)]}}}
        if spec.response is not None:
            op["responses"][str(spec.status)] = {"description": "OK", "content": {
                "application/json": {"schema": lookup[id(spec.response)]}}}
        else:
            op["responses"]["204"] = {"description": "Done"}
        for status in spec.errors:
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
