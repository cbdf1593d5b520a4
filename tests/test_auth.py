"""The auth layer: CSRF on everything that rides on a cookie, and the role check of every route."""

from __future__ import annotations

import re

import pytest

from engine.accounts import ROLES
from storefront.app import all_routes
from tests.factories import PASSWORD

CSRF_FIELD = re.compile(r'<input type="hidden" name="csrf_token" value="([^"]+)">')


def assert_error(body: dict, code: str) -> None:
    assert set(body) == {"error", "message", "fields"}, body
    assert body["error"] == code, body


async def login_with_cookie(client, email: str) -> str:
    """Log in over the JSON API; the cookie stays in the client's jar. Returns the CSRF token."""
    resp = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["csrf_token"]


async def active_tokens(db, user_id: int) -> int:
    return await db.fetchval(
        "SELECT count(*) FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL", user_id)


# --- CSRF with a session cookie --------------------------------------------------------------
async def test_post_without_csrf_header_is_refused_and_changes_nothing(client, factory, db):
    actor = await factory.user("buyer")
    csrf = await login_with_cookie(client, actor.user["email"])
    before = await active_tokens(db, actor.user["id"])
    for headers in ({}, {"X-CSRF-Token": ""}, {"X-CSRF-Token": csrf[:-1]},
                    {"X-CSRF-Token": "x" * len(csrf)}, {"X-CSRF-Token": "é" * 8}):
        resp = await client.post("/api/auth/tokens", json={"name": "csrf"}, headers=headers)
        assert resp.status == 403, (headers, await resp.text())
        assert_error(await resp.json(), "csrf_failed")
    assert await active_tokens(db, actor.user["id"]) == before
    resp = await client.post("/api/auth/tokens", json={"name": "csrf"}, headers={"X-CSRF-Token": csrf})
    assert resp.status == 201, await resp.text()
    assert await active_tokens(db, actor.user["id"]) == before + 1


async def test_csrf_is_checked_before_the_body_is_looked_at(client, factory):
    actor = await factory.user("buyer")
    await login_with_cookie(client, actor.user["email"])
    for data, ctype in (("name=x", "application/x-www-form-urlencoded"), ("{}", "text/plain"),
                        ('{"name": "x"}', "application/json")):
        resp = await client.post("/api/auth/tokens", data=data, headers={"Content-Type": ctype})
        assert resp.status == 403, ctype
        assert_error(await resp.json(), "csrf_failed")


async def test_patch_without_csrf_is_refused_and_changes_nothing(client, factory):
    provider = await factory.user("provider")
    event = await factory.event(provider, title="Original title")
    csrf = await login_with_cookie(client, provider.user["email"])
    url = f"/api/provider/events/{event['id']}"
    resp = await client.patch(url, json={"title": "Hijacked"})
    assert resp.status == 403
    assert_error(await resp.json(), "csrf_failed")
    got = await (await client.get(url)).json()  # reads need no token
    assert got["title"] == "Original title"
    resp = await client.patch(url, json={"title": "Renamed"}, headers={"X-CSRF-Token": csrf})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["title"] == "Renamed"


async def test_delete_without_csrf_is_refused_and_changes_nothing(client, factory, db):
    actor = await factory.user("buyer")
    csrf = await login_with_cookie(client, actor.user["email"])
    token_id = await db.fetchval("SELECT id FROM api_tokens WHERE user_id = $1", actor.user["id"])
    resp = await client.delete(f"/api/auth/tokens/{token_id}")
    assert resp.status == 403
    assert_error(await resp.json(), "csrf_failed")
    assert await active_tokens(db, actor.user["id"]) == 1
    resp = await client.delete(f"/api/auth/tokens/{token_id}", headers={"X-CSRF-Token": csrf})
    assert resp.status == 204
    assert await active_tokens(db, actor.user["id"]) == 0


async def test_logout_needs_the_csrf_token(client, factory):
    actor = await factory.user("buyer")
    csrf = await login_with_cookie(client, actor.user["email"])
    assert (await client.post("/api/auth/logout")).status == 403
    assert (await client.get("/api/auth/me")).status == 200  # still logged in
    assert (await client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})).status == 204
    assert (await client.get("/api/auth/me")).status == 401


async def test_another_sessions_csrf_token_does_not_work(client, factory, db):
    alice, bob = await factory.user("buyer"), await factory.user("buyer")
    alice_csrf = await login_with_cookie(client, alice.user["email"])
    client.session.cookie_jar.clear()
    await login_with_cookie(client, bob.user["email"])
    resp = await client.post("/api/auth/tokens", json={"name": "x"},
                             headers={"X-CSRF-Token": alice_csrf})
    assert resp.status == 403


async def test_bearer_requests_need_no_csrf_even_with_a_cookie(client, factory, db):
    actor = await factory.user("provider")
    await login_with_cookie(client, actor.user["email"])
    starts = "2031-01-01T18:00:00+00:00"
    body = {"title": "Via token", "starts_at": starts, "ends_at": "2031-01-01T20:00:00+00:00"}
    resp = await client.post("/api/provider/events", json=body, headers=actor.h)
    assert resp.status == 201, await resp.text()
    client.session.cookie_jar.clear()
    resp = await client.post("/api/provider/events", json={**body, "title": "No cookie"},
                             headers=actor.h)
    assert resp.status == 201


async def test_anonymous_json_needs_no_csrf(client):
    body = {"email": "anon@example.test", "name": "Anon", "password": PASSWORD}
    assert (await client.post("/api/auth/register", json=body)).status == 201


# --- CSRF on anonymous form posts ------------------------------------------------------------
async def _login_page_token(client) -> str:
    resp = await client.get("/login")
    assert resp.status == 200
    assert "kwika_csrf" in resp.cookies
    morsel = resp.cookies["kwika_csrf"]
    assert morsel["httponly"] is True and morsel["samesite"] == "Lax"
    match = CSRF_FIELD.search(await resp.text())
    assert match, "the login form carries a csrf_token"
    return match.group(1)


async def test_anonymous_form_login_without_csrf_token_is_403(client, factory):
    actor = await factory.user("buyer")
    resp = await client.post("/login", data={"email": actor.user["email"], "password": PASSWORD},
                             allow_redirects=False)
    assert resp.status == 403
    assert "kwika_session" not in resp.cookies


async def test_anonymous_form_login_with_the_page_token_succeeds(client, factory):
    actor = await factory.user("buyer")
    token = await _login_page_token(client)
    resp = await client.post("/login", data={"email": actor.user["email"], "password": PASSWORD,
                                             "csrf_token": token, "next": "/events"},
                             allow_redirects=False)
    assert resp.status == 303, await resp.text()
    assert resp.headers["Location"] == "/events"
    assert "kwika_session" in resp.cookies
    me = await client.get("/api/auth/me")
    assert me.status == 200 and (await me.json())["id"] == actor.user["id"]


async def test_the_form_token_is_bound_to_its_cookie(client, factory):
    actor = await factory.user("buyer")
    token = await _login_page_token(client)
    client.session.cookie_jar.clear()  # a cross-site attacker has the token shape but not the cookie
    resp = await client.post("/login", data={"email": actor.user["email"], "password": PASSWORD,
                                             "csrf_token": token}, allow_redirects=False)
    assert resp.status == 403
    await _login_page_token(client)  # a fresh cookie of this browser's own
    resp = await client.post("/login", data={"email": actor.user["email"], "password": PASSWORD,
                                             "csrf_token": token}, allow_redirects=False)
    assert resp.status == 403  # the old token does not match the new cookie


async def test_a_forged_csrf_cookie_is_ignored(client, factory):
    actor = await factory.user("buyer")
    token = await _login_page_token(client)
    client.session.cookie_jar.clear()
    resp = await client.post("/login", data={"email": actor.user["email"], "password": PASSWORD,
                                             "csrf_token": token},
                             cookies={"kwika_csrf": "forged.0123456789abcdef0123456789abcdef"},
                             allow_redirects=False)
    assert resp.status == 403


async def test_a_logged_in_form_post_needs_the_session_token(client, factory):
    actor = await factory.user("buyer")
    csrf = await login_with_cookie(client, actor.user["email"])
    resp = await client.post("/logout", data={}, allow_redirects=False)
    assert resp.status == 403
    assert (await client.get("/api/auth/me")).status == 200
    resp = await client.post("/logout", data={"csrf_token": csrf}, allow_redirects=False)
    assert resp.status == 303
    assert (await client.get("/api/auth/me")).status == 401


# --- authorization of every route ------------------------------------------------------------
def concrete(path: str) -> str:
    """A request path for a route pattern: 1 for numeric parameters, `x` for the rest."""
    def value(m: re.Match) -> str:
        name, pattern = m.group(1), m.group(2) or ""
        if pattern:  # the first sample the route's own pattern accepts
            samples = ("1", "1111", "x", "TKT-1-ABCD", "ORD-1-ABCD", "H1-abcd")
            return next(v for v in samples if re.fullmatch(pattern, v))
        return "1" if name.endswith("id") else "x"
    return re.sub(r"\{(\w+)(?::((?:[^{}]|\{[^{}]*\})+))?\}", value, path)


def test_concrete_paths():
    assert concrete(r"/api/provider/events/{event_id:\d+}/packages/{package_id:\d+}") == \
        "/api/provider/events/1/packages/1"
    assert concrete("/api/events/{slug}") == "/api/events/x"
    assert concrete(r"/a/{code:\d{4}}") == "/a/1111"
    assert concrete(r"/t/{n:TKT-[0-9]{1,19}-[0-9A-Z]{4,24}}") == "/t/TKT-1-ABCD"


PROTECTED = [spec for spec in all_routes() if spec.roles is not None]
RESTRICTED = [(spec, role) for spec in PROTECTED if spec.roles for role in ROLES
              if role not in spec.roles]


def _id(spec) -> str:
    return f"{spec.method} {spec.path}"


def test_there_are_protected_routes():
    assert PROTECTED and RESTRICTED
    roles = {spec.roles for spec in PROTECTED}
    assert ("provider", "admin") in roles and ("admin",) in roles


@pytest.mark.parametrize("spec", PROTECTED, ids=_id)
async def test_anonymous_gets_401(client, spec):
    resp = await client.request(spec.method, concrete(spec.path))
    assert resp.status == 401, await resp.text()
    assert_error(await resp.json(), "unauthenticated")
    assert resp.headers.get("WWW-Authenticate") == "Bearer"


@pytest.mark.parametrize("spec, role", RESTRICTED, ids=lambda x: x if isinstance(x, str) else _id(x))
async def test_other_roles_get_403(client, factory, spec, role):
    actor = await factory.user(role)
    resp = await client.request(spec.method, concrete(spec.path), headers=actor.h)
    assert resp.status == 403, await resp.text()
    assert_error(await resp.json(), "forbidden")


def test_provider_routes_refuse_buyers_and_admin_routes_refuse_providers():
    by_roles = {(_id(spec), role) for spec, role in RESTRICTED}
    for spec in PROTECTED:
        if spec.roles == ("provider", "admin"):
            assert (_id(spec), "buyer") in by_roles
        if spec.roles == ("admin",):
            assert (_id(spec), "provider") in by_roles


async def test_a_forbidden_write_changes_nothing(client, factory, db):
    provider = await factory.user("provider", verified=False)
    other = await factory.user("provider")
    url = f"/api/admin/providers/{provider.user['provider_id']}/verification"
    resp = await client.post(url, json={"status": "verified"}, headers=other.h)
    assert resp.status == 403
    status = await db.fetchval("SELECT verification_status FROM service_providers WHERE id = $1",
                               provider.user["provider_id"])
    assert status == "pending"


async def test_admin_provider_verification(client, factory):
    admin = await factory.user("admin")
    provider = await factory.user("provider", verified=False)
    url = f"/api/admin/providers/{provider.user['provider_id']}/verification"
    for status in ("verified", "suspended", "rejected", "pending"):
        resp = await client.post(url, json={"status": status}, headers=admin.h)
        assert resp.status == 204, await resp.text()
        me = await (await client.get("/api/auth/me", headers=provider.h)).json()
        assert me["provider_status"] == status
    resp = await client.post(url, json={}, headers=admin.h)
    assert resp.status == 422
    assert_error(await resp.json(), "invalid")


async def test_admin_session_needs_csrf_for_verification(client, factory):
    admin = await factory.user("admin")
    provider = await factory.user("provider", verified=False)
    csrf = await login_with_cookie(client, admin.user["email"])
    url = f"/api/admin/providers/{provider.user['provider_id']}/verification"
    resp = await client.post(url, json={"status": "verified"})
    assert resp.status == 403
    assert_error(await resp.json(), "csrf_failed")
    resp = await client.post(url, json={"status": "verified"}, headers={"X-CSRF-Token": csrf})
    assert resp.status == 204
