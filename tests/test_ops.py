"""Operations: health and readiness, request ids, JSON logs without secrets, the error shapes."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from engine.logs import JsonFormatter, RequestIdFilter, request_id_var, setup_logging
from storefront.app import create_app
from storefront.appkeys import DB
from tests.factories import PASSWORD


def assert_error(body: dict, code: str) -> None:
    assert set(body) == {"error", "message", "fields"}, body
    assert body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"]


@contextlib.contextmanager
def json_logs(level: int = logging.DEBUG) -> Iterator[list[str]]:
    """Every log line of the block, as the production JSON formatter writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    lines: list[str] = []
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        lines.extend(stream.getvalue().splitlines())


@contextlib.asynccontextmanager
async def serve(app: web.Application):
    async with TestClient(TestServer(app)) as client:
        yield client


# --- health and readiness --------------------------------------------------------------------
async def test_healthz(client):
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_readyz_ok_with_checks(client):
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200, body
    assert body["status"] == "ok"
    assert body["checks"]["redis"] == "ok" and body["checks"]["postgres"] == "ok"


async def test_readyz_503_naming_postgres_when_the_pool_is_closed(settings):
    async with serve(create_app(settings)) as client:
        await client.server.app[DB].close()
        resp = await client.get("/readyz")
        body = await resp.json()
        assert resp.status == 503, body
        assert body["status"] == "unavailable"
        assert body["checks"]["postgres"].startswith("error")
        assert body["checks"]["redis"] == "ok"
        assert (await client.get("/healthz")).status == 200  # alive, just not ready


async def test_readyz_503_naming_redis_when_it_is_unreachable(settings):
    broken = msgspec.structs.replace(settings, redis_url="redis://127.0.0.1:1/0")
    async with serve(create_app(broken)) as client:  # start-up needs no Redis round trip
        resp = await client.get("/readyz")
        body = await resp.json()
        assert resp.status == 503, body
        assert body["checks"]["redis"].startswith("error")
        assert body["checks"]["postgres"] == "ok"
        assert "127.0.0.1:1" not in json.dumps(body)  # says which, not where


async def test_readyz_reports_a_dead_background_task(settings):
    import asyncio

    from storefront.appkeys import BACKGROUND

    async with serve(create_app(settings)) as client:
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        client.server.app[BACKGROUND]["writer"] = done
        resp = await client.get("/readyz")
        body = await resp.json()
        assert resp.status == 503
        assert body["checks"]["writer"] == "error: stopped"


# --- request ids -----------------------------------------------------------------------------
async def test_every_response_carries_a_request_id(client):
    ids = set()
    for path in ("/healthz", "/api/nope", "/api/auth/me"):
        resp = await client.get(path)
        rid = resp.headers["X-Request-Id"]
        assert 8 <= len(rid) <= 64
        ids.add(rid)
    assert len(ids) == 3


async def test_a_sane_incoming_request_id_is_kept(client):
    for rid in ("abc-123", "req_7f3a.9:zz", "A" * 64, "0af7651916cd43dd8448eb211c80319c"):
        resp = await client.get("/healthz", headers={"X-Request-Id": rid})
        assert resp.headers["X-Request-Id"] == rid


@pytest.mark.parametrize("rid", ["", "A" * 65, "has space", 'quote"d', "<script>", "tab\there",
                                 "ünïcode"])
async def test_an_odd_incoming_request_id_is_replaced(client, rid):
    resp = await client.get("/healthz", headers={"X-Request-Id": rid.encode("utf-8").decode("latin-1")})
    assert resp.headers["X-Request-Id"] != rid
    assert len(resp.headers["X-Request-Id"]) == 16


async def test_redirects_carry_the_request_id(client):
    resp = await client.get("/", allow_redirects=False, headers={"X-Request-Id": "redir-1"})
    assert resp.status in (301, 302, 303, 307, 308)
    assert resp.headers["X-Request-Id"] == "redir-1"


# --- logs ------------------------------------------------------------------------------------
async def test_json_log_lines_include_the_request_id(client):
    with json_logs() as lines:
        await client.get("/api/auth/me", headers={"X-Request-Id": "trace-me-42"})
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    access = [e for e in entries if e["logger"] == "kwika.access"]
    assert access, lines
    assert access[-1]["request_id"] == "trace-me-42"
    assert access[-1]["status"] == 401 and access[-1]["path"] == "/api/auth/me"
    assert access[-1]["method"] == "GET" and isinstance(access[-1]["ms"], float)
    assert {"ts", "level", "logger", "msg"} <= set(access[-1])


def test_request_id_is_stamped_when_logged_not_when_formatted():
    record = logging.LogRecord("kwika.test", logging.INFO, __file__, 1, "hello %s", ("x",), None)
    token = request_id_var.set("stamped-1")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["request_id"] == "stamped-1"
    assert entry["msg"] == "hello x"


def test_extras_do_not_overwrite_the_core_fields():
    record = logging.LogRecord("kwika.test", logging.WARNING, __file__, 1, "m", (), None)
    record.level = "fake"
    record.order_id = 7
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "warning"
    assert entry["order_id"] == 7


def test_setup_logging_writes_json_with_the_request_id(capsys):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("INFO", as_json=True)
        token = request_id_var.set("setup-1")
        try:
            logging.getLogger("kwika.test").info("hello", extra={"n": 1})
        finally:
            request_id_var.reset(token)
        err = capsys.readouterr().err.strip().splitlines()[-1]
        entry = json.loads(err)
        assert entry["msg"] == "hello" and entry["n"] == 1 and entry["request_id"] == "setup-1"
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


async def test_logs_never_contain_passwords_or_tokens(client, factory):
    actor = await factory.user("buyer")
    secret_password = "Pa55-never-in-logs-" + "z" * 8
    with json_logs() as lines:
        await client.post("/api/auth/register", json={
            "email": "logs@example.test", "name": "Logs", "password": secret_password})
        await client.post("/api/auth/login", json={"email": "logs@example.test",
                                                   "password": secret_password})
        await client.post("/api/auth/login", json={"email": actor.user["email"],
                                                   "password": secret_password})
        await client.post("/api/auth/login", json={"email": "logs@example.test",
                                                   "password": secret_password * 20})
        await client.post("/api/auth/login", data='{"email": "x", "password": "'
                          + secret_password + '"', headers={"Content-Type": "application/json"})
        await client.post("/login", data={"email": "logs@example.test",
                                          "password": secret_password})
        await client.get("/api/auth/me", headers=actor.h)
        await client.get("/api/auth/me", headers={"Authorization": actor.token})
        await client.get("/api/auth/me", headers={"Authorization": f"Basic {actor.token}"})
        await client.get("/api/auth/me", headers={"Authorization": f"Bearer {actor.token}x"})
        await client.get("/events", headers=actor.h)
    assert lines
    text = "\n".join(lines)
    assert secret_password not in text
    assert PASSWORD not in text
    assert actor.token not in text
    assert actor.token[10:] not in text  # not even the part after the shown prefix


# --- error shapes ----------------------------------------------------------------------------
async def test_unknown_api_route_is_a_404_in_the_error_shape(client):
    for path in ("/api/nope", "/api/events/1/nope", "/api"):
        resp = await client.get(path)
        assert resp.status == 404
        assert resp.content_type == "application/json"
        assert_error(await resp.json(), "not_found")


async def test_unknown_page_is_an_html_404(client):
    resp = await client.get("/no-such-page")
    assert resp.status == 404
    assert resp.content_type == "text/html"


async def test_405_in_the_error_shape_with_allow(client):
    resp = await client.put("/api/auth/me")
    assert resp.status == 405
    body = await resp.json()
    assert_error(body, "method_not_allowed")
    assert "PUT" in body["message"]
    assert "GET" in resp.headers["Allow"]


async def test_413_in_the_error_shape(settings):
    small = msgspec.structs.replace(settings, max_body_bytes=2048)
    async with serve(create_app(small)) as client:
        resp = await client.post("/api/auth/register", data=b"x" * 10_000,
                                 headers={"Content-Type": "application/json"})
        assert resp.status == 413
        body = await resp.json()
        assert_error(body, "too_large")
        assert "2048" in body["message"]


async def test_malformed_json_is_a_400(client):
    resp = await client.post("/api/auth/register", data=b"{not json",
                             headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert_error(await resp.json(), "malformed_json")
    resp = await client.post("/api/auth/register", data=b"  ",
                             headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert_error(await resp.json(), "empty_body")


async def test_an_unhandled_exception_becomes_a_500_and_is_logged_with_its_request_id(settings):
    app = create_app(settings)

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("internal detail that must not reach the client")

    app.router.add_get("/api/test-boom", boom)
    app.router.add_get("/test-boom", boom)
    async with serve(app) as client:
        with json_logs() as lines:
            resp = await client.get("/api/test-boom", headers={"X-Request-Id": "boom-1"})
            assert resp.status == 500
            body = await resp.json()
            assert body["error"] == "internal"
            assert_error(body, "internal")
            assert "internal detail" not in json.dumps(body)
            assert resp.headers["X-Request-Id"] == "boom-1"
            page = await client.get("/test-boom")
            assert page.status == 500 and page.content_type == "text/html"
            assert "internal detail" not in await page.text()
    entries = [json.loads(line) for line in lines]
    errors = [e for e in entries if e["logger"] == "kwika.errors"]
    assert errors and errors[0]["request_id"] == "boom-1"
    assert errors[0]["level"] == "error"
    assert "RuntimeError: internal detail" in errors[0]["exc"]
    access = [e for e in entries if e["logger"] == "kwika.access" and e["request_id"] == "boom-1"]
    assert access and access[0]["status"] == 500
