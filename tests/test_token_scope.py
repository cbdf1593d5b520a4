"""API tokens: scopes (read, write, scan) enforced by the one auth layer, optional expiry honoured
from the identity cache too, and tokens made only from a login session."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from engine.keys import Keys
from engine.tokens import TokenGrant, TokenRequest, token_expiry
from storefront.app import all_routes
from storefront.appkeys import ACCOUNTS
from storefront.auth import UNSAFE
from tests.factories import PASSWORD
from tests.test_auth import concrete


async def error(resp, status: int, code: str) -> dict:
    body = await resp.json()
    assert resp.status == status, body
    assert set(body) == {"error", "message", "fields"} and body["error"] == code, body
    return body


async def mint(client, actor, **body) -> dict:
    """A token made through the API from a login session of `actor` (then logged out)."""
    resp = await client.post("/api/auth/login", json={"email": actor.user["email"],
                                                      "password": PASSWORD})
    csrf = {"X-CSRF-Token": (await resp.json())["csrf_token"]}
    resp = await client.post("/api/auth/tokens", json={"name": "t", **body}, headers=csrf)
    client.session.cookie_jar.clear()
    assert resp.status == 201, await resp.text()
    return await resp.json()


def bearer(token: dict | str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token if isinstance(token, str) else token['token']}"}


async def count_rows(db) -> dict[str, int]:
    tables = ("users", "api_tokens", "events", "ticket_packages", "service_providers")
    return {t: await db.fetchval(f"SELECT count(*) FROM {t}") for t in tables}


UNSAFE_ROUTES = [spec for spec in all_routes() if spec.method in UNSAFE]


async def test_a_read_token_reads_and_gets_403_on_every_unsafe_route(client, factory, db):
    provider = await factory.user("provider")
    token = await mint(client, provider, scope="read")
    assert token["scope"] == "read"
    for url in ("/api/auth/me", "/api/auth/tokens", "/api/provider/events", "/api/events"):
        resp = await client.get(url, headers=bearer(token))
        assert resp.status == 200, (url, await resp.text())
    before = await count_rows(db)
    for spec in UNSAFE_ROUTES:
        resp = await client.request(spec.method, concrete(spec.path), headers=bearer(token), json={})
        body = await error(resp, 403, "insufficient_scope")
        assert "read" in body["message"]
    resp = await client.post("/logout", headers=bearer(token), data={})  # pages too
    assert resp.status == 403
    assert await count_rows(db) == before


async def test_the_default_scope_of_a_new_token_is_read(client, factory):
    actor = await factory.user("provider")
    token = await mint(client, actor)
    assert token["scope"] == "read" and token["expires_at"] is None
    resp = await client.post("/api/provider/events", json={}, headers=bearer(token))
    await error(resp, 403, "insufficient_scope")


async def test_a_scan_token_reaches_only_scan_routes(client, factory):
    staff = await factory.user("staff")
    token = await mint(client, staff, scope="scan")
    scan_routes = {(s.method, s.path) for s in all_routes() if s.scan}
    assert ("GET", "/api/auth/me") in scan_routes
    resp = await client.get("/api/auth/me", headers=bearer(token))
    assert resp.status == 200 and (await resp.json())["id"] == staff.user["id"]
    for spec in all_routes():
        if spec.scan:
            continue
        resp = await client.request(spec.method, concrete(spec.path), headers=bearer(token), json={})
        await error(resp, 403, "insufficient_scope")


async def test_a_write_token_acts_with_the_users_whole_authority(client, factory):
    provider = await factory.user("provider")
    token = await mint(client, provider, scope="write")
    event = await factory.event(provider)
    resp = await client.patch(f"/api/provider/events/{event['id']}", json={"title": "Renamed"},
                              headers=bearer(token))
    assert resp.status == 200, await resp.text()
    resp = await client.post("/api/admin/providers/1/verification", json={"status": "verified"},
                             headers=bearer(token))
    await error(resp, 403, "forbidden")  # but no more than the role allows


async def test_the_tests_tokens_and_older_tokens_have_write_scope(client, factory, db):
    actor = await factory.user("provider")
    assert await db.fetchval("SELECT scope FROM api_tokens WHERE user_id = $1", actor.user["id"]) == "write"
    token_id = await db.fetchval(
        "INSERT INTO api_tokens (user_id, name, token_hash, prefix) VALUES ($1, 'old', $2, 'kw_old') "
        "RETURNING id", actor.user["id"], b"\x00" * 32)
    assert await db.fetchval("SELECT scope FROM api_tokens WHERE id = $1", token_id) == "write"
    with pytest.raises(Exception, match="api_tokens_scope_check"):
        await db.execute("UPDATE api_tokens SET scope = 'admin' WHERE id = $1", token_id)


@pytest.mark.parametrize("scope", ["read", "write", "scan"])
async def test_tokens_cannot_make_tokens(client, factory, db, scope):
    actor = await factory.user("staff")
    token = await client.server.app[ACCOUNTS].create_token(actor.user["id"], "parent", scope=scope)
    before = await count_rows(db)
    for body in ({"name": "child", "scope": "read"}, {"name": "child", "scope": "write"}, {}):
        resp = await client.post("/api/auth/tokens", json=body, headers=bearer(token.token))
        assert resp.status == 403
        assert (await resp.json())["error"] in ("session_required", "insufficient_scope")
    assert await count_rows(db) == before


async def test_a_session_mints_any_scope_with_an_expiry(client, factory, db):
    actor = await factory.user("staff")
    now = datetime.now(UTC)
    in_days = await mint(client, actor, scope="scan", expires_in_days=30)
    expires = datetime.fromisoformat(in_days["expires_at"])
    assert timedelta(days=30) - timedelta(minutes=1) < expires - now < timedelta(days=30, minutes=1)
    at = (now + timedelta(hours=5)).replace(microsecond=0)
    explicit = await mint(client, actor, scope="write", expires_at=at.isoformat())
    assert datetime.fromisoformat(explicit["expires_at"]) == at
    stored = await db.fetchrow("SELECT scope, expires_at FROM api_tokens WHERE id = $1", explicit["id"])
    assert (stored["scope"], stored["expires_at"]) == ("write", at)
    listed = await (await client.get("/api/auth/tokens", headers=actor.h)).json()
    assert [(t["id"], t["scope"], t["expires_at"] is not None) for t in listed] == [
        (listed[0]["id"], "write", False),  # the tests' own token
        (in_days["id"], "scan", True), (explicit["id"], "write", True)]


@pytest.mark.parametrize("body, field", [
    ({"expires_in_days": 0}, "expires_in_days"),
    ({"expires_in_days": 3651}, "expires_in_days"),
    ({"expires_in_days": 1.5}, "expires_in_days"),
    ({"expires_at": "2020-01-01T00:00:00+00:00"}, "expires_at"),
    ({"expires_at": "2999-01-01T00:00:00+00:00"}, "expires_at"),
    ({"expires_at": "2031-01-01T00:00:00"}, "expires_at"),
    ({"expires_at": "soon"}, "expires_at"),
    ({"expires_at": "2031-01-01T00:00:00+00:00", "expires_in_days": 3}, "expires_in_days"),
    ({"scope": "admin"}, "scope"),
])
async def test_bad_token_requests_are_422_and_make_nothing(client, factory, db, body, field):
    actor = await factory.user()
    resp = await client.post("/api/auth/login", json={"email": actor.user["email"], "password": PASSWORD})
    csrf = {"X-CSRF-Token": (await resp.json())["csrf_token"]}
    before = await count_rows(db)
    resp = await client.post("/api/auth/tokens", json={"name": "bad", **body}, headers=csrf)
    err = await error(resp, 422, "invalid")
    assert field in err["fields"], err
    assert await count_rows(db) == before


async def test_an_expired_token_is_401(client, factory, db):
    actor = await factory.user("provider")
    accounts = client.server.app[ACCOUNTS]
    past = datetime.now(UTC) - timedelta(minutes=1)
    expired = await accounts.create_token(actor.user["id"], "old", expires_at=past)
    resp = await client.get("/api/auth/me", headers=bearer(expired.token))
    await error(resp, 401, "token_expired")
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert await db.fetchval("SELECT last_used_at FROM api_tokens WHERE id = $1", expired.id) is None
    live = await accounts.create_token(actor.user["id"], "live", expires_at=past + timedelta(days=1))
    assert (await client.get("/api/auth/me", headers=bearer(live.token))).status == 200


async def test_expiry_is_honoured_from_the_identity_cache(client, factory, settings, rds):
    """The cache keeps a token's grant for a minute; a token that expires within that minute is
    refused at once all the same. (Time passing is stood in for by the cached grant's expiry.)"""
    actor = await factory.user("provider")
    accounts = client.server.app[ACCOUNTS]
    token = await accounts.create_token(actor.user["id"], "short",
                                        expires_at=datetime.now(UTC) + timedelta(hours=1))
    assert (await client.get("/api/auth/me", headers=bearer(token.token))).status == 200
    key = Keys(settings.redis_prefix).token(hashlib.sha256(token.token.encode()).hexdigest())
    grant = msgspec.json.decode(await rds.get(key), type=TokenGrant)
    assert grant.user_id == actor.user["id"] and grant.scope == "write" and grant.expires
    await rds.set(key, msgspec.json.encode(msgspec.structs.replace(grant, expires=time.time() - 1)),
                  keepttl=True)
    await error(await client.get("/api/auth/me", headers=bearer(token.token)), 401, "token_expired")


def test_token_expiry_rule():
    now = datetime(2030, 6, 1, 12, tzinfo=UTC)
    assert token_expiry(TokenRequest(name="x"), now) is None
    assert token_expiry(TokenRequest(name="x", expires_in_days=2), now) == now + timedelta(days=2)
    later = now + timedelta(days=9)
    assert token_expiry(TokenRequest(name="x", expires_at=later), now) == later
