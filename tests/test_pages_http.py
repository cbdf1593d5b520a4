"""What every answer carries (security headers, no server version), the favicon, and the absolute
links pages hand out, checked over plain HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from engine.settings import Settings
from storefront.app import create_app
from tests.factories import Factory

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
ANSWERS = [
    ("GET", "/events"), ("GET", "/events/no-such-event"), ("GET", "/login"),
    ("POST", "/login"),  # no CSRF token: a 403 page
    ("GET", "/api/events"), ("GET", "/api/events/nope"), ("DELETE", "/api/events"),
    ("GET", "/api/openapi.json"), ("GET", "/healthz"), ("GET", "/favicon.ico"),
    ("GET", "/static/kwika.css"), ("GET", "/static/kwika.js"), ("GET", "/nowhere"),
    ("GET", "/api/auth/me"),
]


async def client_for(settings: Settings) -> TestClient:
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    return client


@pytest.fixture
async def secure_client(settings: Settings) -> AsyncIterator[TestClient]:
    client = await client_for(msgspec.structs.replace(settings, cookie_secure=True))
    yield client
    await client.close()


# --- headers ---------------------------------------------------------------------------------
@pytest.mark.parametrize("method, path", ANSWERS)
async def test_every_answer_carries_the_security_headers(client, method, path):
    resp = await client.request(method, path, allow_redirects=False)
    assert resp.headers["Content-Security-Policy"] == CSP
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Server"] == "Kwika"
    assert "Strict-Transport-Security" not in resp.headers  # cookies are not secure here


@pytest.mark.parametrize("method, path", ANSWERS)
async def test_hsts_when_cookies_are_secure(secure_client, method, path):
    resp = await secure_client.request(method, path, allow_redirects=False)
    assert resp.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert resp.headers["Content-Security-Policy"] == CSP


@pytest.mark.parametrize("raw", [
    b"NOT A REQUEST\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    b"GET /events HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
])
async def test_answers_before_the_app_name_no_server_version(client, raw):
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(raw)
    await writer.drain()
    head = (await reader.read(4096)).decode("latin-1")
    writer.close()
    await writer.wait_closed()
    assert head.startswith(("HTTP/1.0 400", "HTTP/1.1 400")), head
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.partition(":") for line in head.split("\r\n\r\n")[0].split("\r\n")[1:])}
    assert headers["server"] == "Kwika", head


# --- favicon ---------------------------------------------------------------------------------
async def test_favicon_is_served(client):
    resp = await client.get("/favicon.ico")
    assert resp.status == 200
    assert resp.content_type == "image/svg+xml"
    body = await resp.text()
    assert body.startswith("<svg") and "</svg>" in body
    html = await (await client.get("/events")).text()
    assert '<link rel="icon" type="image/svg+xml" href="/static/favicon.svg' in html


# --- absolute links --------------------------------------------------------------------------
def ics_url(text: str) -> str:
    return next(line[4:] for line in text.split("\r\n") if line.startswith("URL:"))


async def test_links_name_the_port_actually_served(client, factory: Factory):
    provider = await factory.user("provider")
    event = await factory.published_event(provider)
    expected = f"http://127.0.0.1:{client.port}/events/{event['slug']}"
    assert client.port != 8080
    html = await (await client.get(f"/events/{event['slug']}")).text()
    assert f'<link rel="canonical" href="{expected}">' in html
    assert f'<meta property="og:url" content="{expected}">' in html
    assert f'data-copy="{expected}"' in html
    ics = await (await client.get(f"/events/{event['slug']}/calendar.ics")).text()
    assert ics_url(ics) == expected


async def test_the_host_header_does_not_choose_the_links(client, factory: Factory):
    provider = await factory.user("provider")
    event = await factory.published_event(provider)
    resp = await client.get(f"/events/{event['slug']}/calendar.ics",
                            headers={"Host": "evil.example"})
    assert ics_url(await resp.text()) == f"http://127.0.0.1:{client.port}/events/{event['slug']}"


async def test_a_configured_public_url_wins(settings: Settings):
    client = await client_for(msgspec.structs.replace(settings,
                                                      public_url="https://tickets.example"))
    try:
        factory = Factory(client)
        provider = await factory.user("provider")
        event = await factory.published_event(provider)
        html = await (await client.get(f"/events/{event['slug']}")).text()
        assert f'<link rel="canonical" href="https://tickets.example/events/{event["slug"]}">' in html
        ics = await (await client.get(f"/events/{event['slug']}/calendar.ics")).text()
        assert ics_url(ics) == f"https://tickets.example/events/{event['slug']}"
    finally:
        await client.close()
