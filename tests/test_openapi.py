"""/api/openapi.json: a valid OpenAPI 3.1 description of exactly the JSON routes the app serves."""

from __future__ import annotations

import re
from typing import Any

import pytest
from openapi_spec_validator import validate

from engine import catalog_types as t
from storefront import openapi
from storefront.app import all_routes, create_app


@pytest.fixture
async def spec(client) -> dict[str, Any]:
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    return await resp.json()


def op_of(spec: dict, route) -> dict:
    path = openapi._path(route.path)
    assert path in spec["paths"], path
    assert route.method.lower() in spec["paths"][path], (route.method, path)
    return spec["paths"][path][route.method.lower()]


def refs(node: Any):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs(v)


def resolve(spec: dict, ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = spec
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, ref
        node = node[part]
    return node


async def test_it_validates_as_openapi_3_1(spec):
    assert spec["openapi"].startswith("3.1")
    assert spec["info"]["title"] and spec["info"]["version"]
    validate(spec)


async def test_every_route_appears_with_its_method(spec):
    routes = all_routes()
    assert routes
    for route in routes:
        op = op_of(spec, route)
        assert op["summary"] == route.summary
        assert op["tags"] == [route.tag]
    documented = {(p, m.upper()) for p, ops in spec["paths"].items() for m in ops}
    assert documented == {(openapi._path(r.path), r.method) for r in routes}


async def test_the_app_serves_no_undocumented_json_route(spec, settings):
    app = create_app(settings)
    served = set()
    for resource in app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter")
        if not path or not path.startswith("/api/") or path == "/api/openapi.json":
            continue
        for route in resource:
            if route.method != "HEAD":
                served.add((re.sub(r"\{(\w+)[^}]*\}", r"{\1}", path), route.method))
    documented = {(p, m.upper()) for p, ops in spec["paths"].items() for m in ops}
    assert served == documented


async def test_paths_carry_no_regex_and_declare_their_parameters(spec):
    for path, ops in spec["paths"].items():
        assert path.startswith("/api/")
        assert not re.search(r"[\\:+*?()\[\]^$]", path), path
        names = re.findall(r"\{([^}]*)\}", path)
        assert all(re.fullmatch(r"\w+", n) for n in names), path
        for method, op in ops.items():
            declared = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
            assert sorted(declared) == sorted(names), (method, path)
            for p in op.get("parameters", []):
                if p["in"] == "path":
                    assert p["required"] is True


async def test_numeric_path_parameters_are_integers(spec):
    for route in all_routes():
        op = op_of(spec, route)
        for p in op.get("parameters", []):
            if p["in"] != "path":
                continue
            regex = re.search(r"\{" + p["name"] + r"(?::([^}]*))?\}", route.path).group(1)
            if regex == r"\d+":
                assert p["schema"]["type"] == "integer", (route.path, p)
            else:
                assert p["schema"]["type"] == "string", (route.path, p)
    slug = spec["paths"]["/api/events/{slug}"]["get"]["parameters"][0]
    assert slug == {"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}}


def test_paths_with_quantifiers_in_their_regex():
    assert openapi._path(r"/api/x/{code:[A-Z]{3}}/{id:\d+}") == "/api/x/{code}/{id}"
    params = openapi._path_params(r"/api/x/{code:[A-Z]{3}}/{id:\d+}")
    assert [p["name"] for p in params] == ["code", "id"]
    assert params[0]["schema"]["type"] == "string" and params[1]["schema"]["type"] == "integer"


async def test_request_bodies_reference_the_msgspec_schemas(spec):
    with_body = [r for r in all_routes() if r.body is not None]
    assert with_body
    for route in with_body:
        body = op_of(spec, route)["requestBody"]
        assert body["required"] is True
        schema = body["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{route.body.__name__}"}
    for route in all_routes():
        if route.body is None:
            assert "requestBody" not in op_of(spec, route)
    create = spec["components"]["schemas"]["EventCreate"]
    assert create["type"] == "object"
    assert {"title", "starts_at", "ends_at"} <= set(create["required"])
    assert "description" not in create["required"]  # has a default
    assert create["properties"]["starts_at"]["format"] == "date-time"
    registration = spec["components"]["schemas"]["Registration"]
    assert {"email", "name", "password"} <= set(registration["required"])
    assert registration["additionalProperties"] is False  # unknown fields are refused


async def test_responses_reference_their_types_and_the_error_shape(spec):
    error = spec["components"]["schemas"]["ErrorBody"]
    assert set(error["required"]) >= {"error", "message"}
    assert set(error["properties"]) == {"error", "message", "fields"}
    for route in all_routes():
        op = op_of(spec, route)
        if route.response is None:
            assert "204" in op["responses"]
        else:
            content = op["responses"][str(route.status)]["content"]["application/json"]
            assert "schema" in content
        for status in route.errors:
            schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}
        if route.roles is not None:
            assert "401" in op["responses"], route.path
            assert op["security"] == [{"session": []}, {"bearer": []}]
        else:
            assert "security" not in op
        if route.roles:
            assert "403" in op["responses"], route.path
        if route.body is not None:
            assert {"415", "422"} <= set(op["responses"]), route.path


async def test_list_responses_are_arrays(spec):
    op = spec["paths"]["/api/auth/tokens"]["get"]
    schema = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["type"] == "array"
    assert schema["items"] == {"$ref": "#/components/schemas/TokenInfo"}


async def test_query_parameters_come_from_the_query_type(spec):
    op = spec["paths"]["/api/events"]["get"]
    query = [p["name"] for p in op["parameters"] if p["in"] == "query"]
    assert query == list(t.EventQuery.__struct_fields__)
    assert {"q", "category", "page", "per_page", "sort"} <= set(query)


async def test_every_ref_resolves_inside_components(spec):
    found = list(refs(spec))
    assert found
    for ref in found:
        assert ref.startswith("#/components/schemas/"), ref
        assert isinstance(resolve(spec, ref), dict)


async def test_operation_ids_are_unique(spec):
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


async def test_security_schemes(spec):
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer"}
    assert schemes["session"]["in"] == "cookie" and schemes["session"]["name"] == "kwika_session"
