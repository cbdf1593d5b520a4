"""Accounts over the JSON API: register, passwords, sessions, API tokens (throttling: test_login_limits)."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from engine.keys import Keys
from engine.signing import sign, unsign
from storefront.appkeys import ACCOUNTS
from tests.factories import PASSWORD

SESSION_COOKIE = "kwika_session"


def _body(n: int, **extra) -> dict:
    return {"email": f"acct{n}@example.test", "name": f"Acct {n}", "password": PASSWORD, **extra}


async def register(client, **body):
    return await client.post("/api/auth/register", json=body)


async def login(client, email: str, password: str = PASSWORD, headers=None):
    return await client.post("/api/auth/login", json={"email": email, "password": password},
                             headers=headers)


def assert_error(body: dict, code: str) -> None:
    assert set(body) == {"error", "message", "fields"}, body
    assert body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"]


def session_cookie(client) -> str | None:
    for cookie in client.session.cookie_jar:
        if cookie.key == SESSION_COOKIE:
            return cookie.value
    return None


# --- registration ---------------------------------------------------------------------------
async def test_register_buyer(client, db):
    resp = await register(client, **_body(1, phone="+265 888 000 111"))
    assert resp.status == 201, await resp.text()
    user = await resp.json()
    assert user["email"] == "acct1@example.test"
    assert user["role"] == "buyer"
    assert user["provider_id"] is None and user["provider_status"] is None
    assert "password" not in user and "password_hash" not in user
    row = await db.fetchrow("SELECT role, phone FROM users WHERE id = $1", user["id"])
    assert row["role"] == "buyer" and row["phone"] == "+265 888 000 111"
    assert await db.fetchval("SELECT count(*) FROM service_providers") == 0


async def test_register_provider_gets_a_pending_provider_record(client, db):
    resp = await register(client, **_body(2, account_type="provider", business_name="Lake Sounds"))
    assert resp.status == 201, await resp.text()
    user = await resp.json()
    assert user["role"] == "provider"
    assert user["provider_status"] == "pending"
    row = await db.fetchrow("SELECT * FROM service_providers WHERE user_id = $1", user["id"])
    assert row["id"] == user["provider_id"]
    assert row["business_name"] == "Lake Sounds"
    assert row["verification_status"] == "pending"
    assert row["verified_at"] is None
    assert row["contact_email"] == "acct2@example.test"


async def test_a_provider_needs_a_business_name(client, db):
    resp = await register(client, **_body(3, account_type="provider"))
    assert resp.status == 422
    body = await resp.json()
    assert_error(body, "invalid")
    assert "business_name" in body["fields"]
    assert await db.fetchval("SELECT count(*) FROM users") == 0


@pytest.mark.parametrize("change, field", [
    ({"email": "not-an-email"}, "email"),
    ({"password": "short"}, "password"),
    ({"name": ""}, "name"),
    ({"account_type": "admin"}, "account_type"),
    ({"role": "admin"}, "role"),
])
async def test_registration_rejects_bad_input(client, db, change, field):
    resp = await register(client, **{**_body(4), **change})
    assert resp.status == 422
    body = await resp.json()
    assert_error(body, "invalid")
    assert field in body["fields"], body
    assert await db.fetchval("SELECT count(*) FROM users") == 0


async def test_duplicate_email_is_a_conflict_whatever_its_case(client, db):
    assert (await register(client, **_body(6))).status == 201
    for email in ("acct6@example.test", "ACCT6@Example.Test"):
        resp = await register(client, **{**_body(6), "email": email})
        assert resp.status == 409
        body = await resp.json()
        assert_error(body, "email_taken")
        assert "email" in body["fields"]
    assert await db.fetchval("SELECT count(*) FROM users") == 1


async def test_concurrent_registrations_of_one_email_create_one_user(client, db):
    results = await asyncio.gather(*(register(client, **_body(7)) for _ in range(5)))
    assert sorted(r.status for r in results) == [201, 409, 409, 409, 409]
    assert await db.fetchval("SELECT count(*) FROM users") == 1


async def test_password_is_stored_as_an_argon2id_hash(client, db):
    resp = await register(client, **_body(8))
    user = await resp.json()
    row = await db.fetchrow("SELECT * FROM users WHERE id = $1", user["id"])
    assert row["password_hash"].startswith("$argon2id$")
    for value in dict(row).values():
        assert PASSWORD not in str(value)


# --- log in ----------------------------------------------------------------------------------
async def test_login_sets_a_signed_http_only_lax_session_cookie(client, settings, rds):
    await register(client, **_body(10))
    resp = await login(client, "acct10@example.test")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["user"]["email"] == "acct10@example.test"
    assert isinstance(body["csrf_token"], str) and len(body["csrf_token"]) >= 20
    morsel = resp.cookies[SESSION_COOKIE]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Lax"
    assert morsel["path"] == "/"
    assert int(morsel["max-age"]) == settings.session_ttl_seconds
    assert not morsel["secure"]  # cookie_secure is off in tests
    sid = unsign(settings.secret_key, "session", morsel.value)
    assert sid is not None and sid != morsel.value
    stored = await rds.get(Keys(settings.redis_prefix).session(sid))
    assert stored is not None
    ttl = await rds.ttl(Keys(settings.redis_prefix).session(sid))
    assert 0 < ttl <= settings.session_ttl_seconds


async def test_me_with_the_session_cookie(client):
    await register(client, **_body(11))
    await login(client, "acct11@example.test")
    resp = await client.get("/api/auth/me")
    assert resp.status == 200
    assert (await resp.json())["email"] == "acct11@example.test"


async def test_login_email_is_case_insensitive(client):
    await register(client, **_body(12))
    resp = await login(client, "  ACCT12@example.TEST ")
    assert resp.status == 200, await resp.text()


async def test_me_anonymous_is_401(client):
    resp = await client.get("/api/auth/me")
    assert resp.status == 401
    assert_error(await resp.json(), "unauthenticated")
    assert resp.headers["WWW-Authenticate"] == "Bearer"


async def test_wrong_password_and_unknown_email_get_the_same_answer(client):
    await register(client, **_body(13))
    wrong = await login(client, "acct13@example.test", "wrong password!")
    unknown = await login(client, "nobody@example.test", "wrong password!")
    assert wrong.status == unknown.status == 401
    a, b = await wrong.json(), await unknown.json()
    assert_error(a, "bad_credentials")
    assert a == b
    assert SESSION_COOKIE not in wrong.cookies


@pytest.mark.parametrize("body, status", [
    ({"email": "a@b.c"}, 422),
    ({"password": "x"}, 422),
    ({"email": "", "password": "x"}, 422),
])
async def test_login_input_errors(client, body, status):
    resp = await client.post("/api/auth/login", json=body)
    assert resp.status == status
    assert_error(await resp.json(), "invalid")


async def test_login_needs_a_json_body(client):
    resp = await client.post("/api/auth/login", data="email=a@b.c&password=x",
                             headers={"Content-Type": "text/plain"})
    assert resp.status == 415
    assert_error(await resp.json(), "unsupported_media_type")


async def test_login_again_replaces_the_session(client, settings, rds):
    await register(client, **_body(18))
    first = await (await login(client, "acct18@example.test")).json()
    old_sid = unsign(settings.secret_key, "session", session_cookie(client))
    resp = await login(client, "acct18@example.test",
                       headers={"X-CSRF-Token": first["csrf_token"]})
    assert resp.status == 200
    new_sid = unsign(settings.secret_key, "session", session_cookie(client))
    assert new_sid != old_sid
    assert await rds.exists(Keys(settings.redis_prefix).session(old_sid)) == 0


# --- log out ---------------------------------------------------------------------------------
async def test_logout_ends_the_session(client, settings, rds):
    await register(client, **_body(20))
    csrf = (await (await login(client, "acct20@example.test")).json())["csrf_token"]
    cookie = session_cookie(client)
    sid = unsign(settings.secret_key, "session", cookie)
    key = Keys(settings.redis_prefix).session(sid)
    assert await rds.exists(key) == 1
    resp = await client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})
    assert resp.status == 204
    assert resp.cookies[SESSION_COOKIE].value == ""  # the browser drops it
    assert await rds.exists(key) == 0
    # replaying the old cookie does not work either
    client.session.cookie_jar.clear()
    resp = await client.get("/api/auth/me", cookies={SESSION_COOKIE: cookie})
    assert resp.status == 401


async def test_logout_anonymous_is_401(client):
    resp = await client.post("/api/auth/logout")
    assert resp.status == 401


# --- forged cookies --------------------------------------------------------------------------
async def test_forged_or_tampered_cookies_are_ignored(client, settings):
    await register(client, **_body(21))
    await login(client, "acct21@example.test")
    good = session_cookie(client)
    sid = unsign(settings.secret_key, "session", good)
    client.session.cookie_jar.clear()
    assert (await client.get("/api/auth/me", cookies={SESSION_COOKIE: good})).status == 200
    forged = [
        sid,  # the bare id, no tag
        sid + ".",
        sid + "." + "0" * 32,
        good[:-1] + ("0" if good[-1] != "0" else "1"),  # one character of the tag changed
        "x" + good,  # the id changed
        sign("another-secret-key-0123456789", "session", sid),
        sign(settings.secret_key, "guest", sid),  # signed by us, for another purpose
        sign(settings.secret_key, "csrf", sid),
        "." + good.rpartition(".")[2],
        "",
        "not-a-cookie",
        sid + ".é" * 16,
        good + "é",
    ]
    for value in forged:
        client.session.cookie_jar.clear()
        resp = await client.get("/api/auth/me", cookies={SESSION_COOKIE: value})
        assert resp.status == 401, value
        assert_error(await resp.json(), "unauthenticated")


def test_sign_and_unsign():
    signed = sign("k" * 20, "guest", "abc.def")
    assert unsign("k" * 20, "guest", signed) == "abc.def"
    assert unsign("k" * 20, "session", signed) is None  # one purpose never passes for another
    assert unsign("k" * 20, "csrf", signed) is None
    assert unsign("j" * 20, "guest", signed) is None
    assert unsign("k" * 20, "guest", "abc.def") is None
    assert unsign("k" * 20, "guest", "") is None
    assert unsign("k" * 20, "guest", signed + "é") is None
    assert unsign("k" * 20, "guest", signed[:-1] + "é") is None


# --- API tokens ------------------------------------------------------------------------------
async def session_headers(client, email: str) -> dict[str, str]:
    """Log in with a cookie (kept in the client's jar); the CSRF header its writes need."""
    resp = await login(client, email)
    assert resp.status == 200, await resp.text()
    return {"X-CSRF-Token": (await resp.json())["csrf_token"]}


async def test_api_token_lifecycle(client, factory, db):
    actor = await factory.user("buyer")
    csrf = await session_headers(client, actor.user["email"])  # tokens are made from a session
    resp = await client.post("/api/auth/tokens", json={"name": "gate scanner"}, headers=csrf)
    assert resp.status == 201, await resp.text()
    new = await resp.json()
    token = new["token"]
    assert token.startswith("kw_") and len(token) >= 40
    assert new["name"] == "gate scanner"
    assert token.startswith(new["prefix"]) and len(new["prefix"]) < len(token) // 2

    # stored hashed: the digest is there, the token is not, in any column
    row = await db.fetchrow("SELECT * FROM api_tokens WHERE id = $1", new["id"])
    assert bytes(row["token_hash"]) == hashlib.sha256(token.encode()).digest()
    for value in dict(row).values():
        assert token not in str(value)
        if isinstance(value, bytes):
            assert token.encode() not in value

    # it works, and lists without the secret
    h = {"Authorization": f"Bearer {token}"}
    me = await client.get("/api/auth/me", headers=h)
    assert me.status == 200 and (await me.json())["id"] == actor.user["id"]
    listed = await (await client.get("/api/auth/tokens", headers=h)).json()
    assert [t["name"] for t in listed] == ["tests", "gate scanner"]
    assert all("token" not in t for t in listed)
    assert listed[1]["last_used_at"] is not None  # it was used just now

    # revoked: 401, gone from the list, and revoking again is 404
    resp = await client.delete(f"/api/auth/tokens/{new['id']}", headers=actor.h)
    assert resp.status == 204
    resp = await client.get("/api/auth/me", headers=h)
    assert resp.status == 401
    assert_error(await resp.json(), "unauthenticated")
    listed = await (await client.get("/api/auth/tokens", headers=actor.h)).json()
    assert [t["name"] for t in listed] == ["tests"]
    resp = await client.delete(f"/api/auth/tokens/{new['id']}", headers=actor.h)
    assert resp.status == 404


async def test_another_users_token_is_not_found(client, factory):
    alice, bob = await factory.user("buyer"), await factory.user("buyer")
    csrf = await session_headers(client, alice.user["email"])
    new = await (await client.post("/api/auth/tokens", json={"name": "a"}, headers=csrf)).json()
    client.session.cookie_jar.clear()
    resp = await client.delete(f"/api/auth/tokens/{new['id']}", headers=bob.h)
    assert resp.status == 404
    assert_error(await resp.json(), "not_found")
    assert (await client.get("/api/auth/me", headers={
        "Authorization": f"Bearer {new['token']}"})).status == 200
    bob_list = await (await client.get("/api/auth/tokens", headers=bob.h)).json()
    assert new["id"] not in [t["id"] for t in bob_list]


async def test_token_ids_that_are_not_numbers_are_404(client, factory):
    actor = await factory.user("buyer")
    for bad in ("abc", "-1", "99999999999999999999999"):
        resp = await client.delete(f"/api/auth/tokens/{bad}", headers=actor.h)
        assert resp.status == 404, bad


async def test_token_request_validation(client, factory):
    actor = await factory.user("buyer")
    csrf = await session_headers(client, actor.user["email"])
    resp = await client.post("/api/auth/tokens", json={"name": ""}, headers=csrf)
    assert resp.status == 422
    resp = await client.post("/api/auth/tokens", json={}, headers=csrf)
    assert resp.status == 422
    assert "name" in (await resp.json())["fields"]


@pytest.mark.parametrize("header", [
    "Basic dXNlcjpwYXNz",
    "Bearer",
    "Bearer ",
    "Token kw_abc",
    "kw_abcdef",
    "Bearer kw_not-a-real-token",
    "Bearer kw_é",
])
async def test_malformed_or_unknown_authorization_is_401(client, factory, header):
    await factory.user("buyer")
    resp = await client.get("/api/auth/me", headers={"Authorization": header})
    assert resp.status == 401
    assert_error(await resp.json(), "unauthenticated")


async def test_bearer_scheme_is_case_insensitive(client, factory):
    actor = await factory.user("buyer")
    resp = await client.get("/api/auth/me", headers={"Authorization": f"bearer {actor.token}"})
    assert resp.status == 200


async def test_a_deactivated_user_is_locked_out(client, factory, db):
    actor = await factory.user("buyer")
    await login(client, actor.user["email"])
    assert (await client.get("/api/auth/me")).status == 200
    await client.server.app[ACCOUNTS].set_active(actor.user["id"], False)
    resp = await client.get("/api/auth/me", headers=actor.h)
    assert resp.status == 401
    assert_error(await resp.json(), "unauthenticated")
    resp = await client.get("/api/auth/me")  # the session cookie
    assert resp.status == 401
    assert_error(await resp.json(), "unauthenticated")
    resp = await login(client, actor.user["email"])
    assert resp.status == 401
    assert_error(await resp.json(), "bad_credentials")


async def test_admin_verifies_a_provider(client, factory, db):
    admin = await factory.user("admin")
    provider = await factory.user("provider", verified=False)
    assert provider.user["provider_status"] == "pending"
    url = f"/api/admin/providers/{provider.user['provider_id']}/verification"
    resp = await client.post(url, json={"status": "verified"}, headers=admin.h)
    assert resp.status == 204, await resp.text()
    me = await (await client.get("/api/auth/me", headers=provider.h)).json()
    assert me["provider_status"] == "verified"
    assert await db.fetchval("SELECT verified_at IS NOT NULL FROM service_providers WHERE id = $1",
                             provider.user["provider_id"])
    resp = await client.post(url, json={"status": "approved"}, headers=admin.h)
    assert resp.status == 422
    resp = await client.post("/api/admin/providers/999999/verification",
                             json={"status": "verified"}, headers=admin.h)
    assert resp.status == 404


async def test_a_stale_cache_fill_cannot_outlive_a_deactivation(client, factory):
    """A read that loaded the user before the deactivation writes its copy after it: the
    tombstone wins, so the deactivation holds at once."""
    actor = await factory.user("buyer")
    accounts = client.server.app[ACCOUNTS]
    stale = await accounts.get_user(actor.user["id"])  # read before...
    await accounts.set_active(actor.user["id"], False)  # ...the deactivation...
    await accounts.redis.set(accounts.keys.user(stale.id), b"{}", nx=True)  # ...fills after it
    assert (await client.get("/api/auth/me", headers=actor.h)).status == 401
