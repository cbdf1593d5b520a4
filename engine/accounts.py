"""Accounts: users with roles, passwords, login sessions in Redis and API tokens.

Passwords are hashed with Argon2id (memory-hard) in an executor, never on the event loop.
Sessions are random ids stored in Redis with a TTL; the cookie carries the id and an HMAC of it.
API tokens (`kw_<random>`) are shown once and stored as SHA-256 digests: a 256-bit random token
needs no slow hash, and a lookup by digest is constant work.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from concurrent.futures import Executor
from datetime import datetime
from typing import Annotated, Literal

import asyncpg
import msgspec
import redis.asyncio as redis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from msgspec import Meta, Struct

from engine.errors import Conflict, Invalid, NotFound, Unauthenticated
from engine.inputs import ONE_LINE
from engine.keys import Keys

Role = Literal["buyer", "provider", "staff", "admin"]
ROLES: tuple[str, ...] = ("buyer", "provider", "staff", "admin")
Email = Annotated[str, Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$(?!\n)")]
Password = Annotated[str, Meta(min_length=8, max_length=256)]
Name = Annotated[str, Meta(min_length=1, max_length=120, pattern=ONE_LINE)]

LOGIN_FAILURE_LIMIT = 10
LOGIN_FAILURE_WINDOW = 900
TOKEN_TOUCH_SECONDS = 60  # last_used_at is refreshed at most this often (no write per request)
# Identities (user, token -> user) are cached in Redis this long, so an authenticated request
# (a hold in a rush) touches Redis only. Changes made through Accounts take effect at once;
# a change made behind its back (SQL) within this time.
IDENTITY_CACHE_SECONDS = 60
# An invalidated entry is replaced by this tombstone for a cache lifetime, and entries are only
# ever written with NX: a read that began before the invalidation cannot put stale data back.
_TOMBSTONE = b"-"

# Reserve one login attempt atomically: count it, and (while under the limit) restart the window.
# Parallel guesses each get their own number, so no more than the limit are ever checked.
_RESERVE_ATTEMPT = """
local n = redis.call('INCR', KEYS[1])
if n <= tonumber(ARGV[1]) or redis.call('TTL', KEYS[1]) < 0 then
    redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return n
"""


class Registration(Struct, forbid_unknown_fields=True, kw_only=True):
    email: Email
    name: Name
    password: Password
    phone: Annotated[str, Meta(max_length=30)] | None = None
    account_type: Literal["buyer", "provider"] = "buyer"
    business_name: Annotated[str, Meta(min_length=1, max_length=200, pattern=ONE_LINE)] | None = None


class Credentials(Struct, forbid_unknown_fields=True, kw_only=True):
    email: Annotated[str, Meta(min_length=1, max_length=254)]
    password: Annotated[str, Meta(min_length=1, max_length=256)]


class User(Struct, kw_only=True):
    id: int
    email: str
    name: str
    role: Role
    provider_id: int | None = None
    provider_status: str | None = None


class TokenRequest(Struct, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=100)]


class TokenInfo(Struct, kw_only=True):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None


class NewToken(TokenInfo, kw_only=True):
    token: str  # shown once


class Session(Struct, kw_only=True):
    id: str
    user_id: int
    csrf: str


def _token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Accounts:
    """Users, sessions and tokens. Password hashing runs on `executor`."""

    def __init__(self, pool: asyncpg.Pool, redis_client: redis.Redis, keys: Keys,
                 executor: Executor | None, session_ttl: int,
                 argon2_memory_kib: int = 65_536, argon2_time_cost: int = 3):
        # argon2id; the defaults are argon2-cffi's RFC 9106 "low memory" profile
        self.hasher = PasswordHasher(memory_cost=argon2_memory_kib, time_cost=argon2_time_cost)
        self._dummy_hash = self.hasher.hash("not a real password")
        self.pool = pool
        self.redis = redis_client
        self.keys = keys
        self.executor = executor
        self.session_ttl = session_ttl
        self._reserve_attempt = redis_client.register_script(_RESERVE_ATTEMPT)

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    # --- users -------------------------------------------------------------------------------
    async def register(self, data: Registration, role: Role | None = None) -> User:
        """Create a user; providers also get a service-provider record (pending verification)."""
        role = role or ("provider" if data.account_type == "provider" else "buyer")
        if role == "provider" and not data.business_name:
            raise Invalid("providers need a business_name", fields={"business_name": "required"})
        password_hash = await self._run(self.hasher.hash, data.password)
        async with self.pool.acquire() as conn, conn.transaction():
            try:
                user_id = await conn.fetchval(
                    "INSERT INTO users (email, name, phone, password_hash, role) "
                    "VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    data.email.strip(), data.name, data.phone, password_hash, role)
            except asyncpg.UniqueViolationError:
                raise Conflict("an account with this email exists", code="email_taken",
                               fields={"email": "already registered"}) from None
            if role == "provider":
                await conn.execute(
                    "INSERT INTO service_providers (user_id, business_name, contact_email, contact_phone) "
                    "VALUES ($1, $2, $3, $4)", user_id, data.business_name, data.email, data.phone)
        return await self.get_user(user_id)

    async def get_user(self, user_id: int) -> User:
        row = await self.pool.fetchrow(
            "SELECT u.id, u.email, u.name, u.role, sp.id AS provider_id, "
            "sp.verification_status AS provider_status FROM users u "
            "LEFT JOIN service_providers sp ON sp.user_id = u.id WHERE u.id = $1 AND u.is_active",
            user_id)
        if row is None:
            raise NotFound("no such user")
        return User(**dict(row))

    async def authenticate(self, creds: Credentials) -> User:
        """The user for these credentials, or Unauthenticated (same answer for unknown email)."""
        email = creds.email.strip().lower()
        fail_key = self.keys.login_failures(email)
        attempts = await self._reserve_attempt(keys=[fail_key],
                                               args=[LOGIN_FAILURE_LIMIT, LOGIN_FAILURE_WINDOW])
        if int(attempts) > LOGIN_FAILURE_LIMIT:
            raise Unauthenticated("too many failed logins; try again in 15 minutes",
                                  code="too_many_attempts")
        row = await self.pool.fetchrow(
            "SELECT id, password_hash FROM users WHERE lower(email) = $1 AND is_active", email)
        stored = row["password_hash"] if row else self._dummy_hash  # same work for unknown emails
        try:
            await self._run(self.hasher.verify, stored, creds.password)
            ok = row is not None
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok:  # the reserved attempt stays counted
            raise Unauthenticated("email or password is wrong", code="bad_credentials")
        await self.redis.delete(fail_key)
        if self.hasher.check_needs_rehash(stored):
            new_hash = await self._run(self.hasher.hash, creds.password)
            await self.pool.execute("UPDATE users SET password_hash = $2 WHERE id = $1", row["id"], new_hash)
        return await self.get_user(row["id"])

    async def cached_user(self, user_id: int) -> User:
        """`get_user` through the identity cache."""
        key = self.keys.user(user_id)
        raw = await self.redis.get(key)
        if raw is not None and raw != _TOMBSTONE:
            return msgspec.json.decode(raw, type=User)
        user = await self.get_user(user_id)
        await self.redis.set(key, msgspec.json.encode(user), ex=IDENTITY_CACHE_SECONDS, nx=True)
        return user

    async def forget_user(self, user_id: int) -> None:
        await self.redis.set(self.keys.user(user_id), _TOMBSTONE, ex=IDENTITY_CACHE_SECONDS)

    async def set_active(self, user_id: int, active: bool) -> None:
        """Lock a user out (or let them back in); a locked-out user's requests fail at once."""
        done = await self.pool.execute("UPDATE users SET is_active = $2, updated_at = now() "
                                       "WHERE id = $1", user_id, active)
        if done.endswith(" 0"):
            raise NotFound(f"no user with id {user_id}")
        await self.forget_user(user_id)

    async def set_provider_status(self, provider_id: int, status: str) -> None:
        user_id = await self.pool.fetchval(
            "UPDATE service_providers SET verification_status = $2, "
            "verified_at = CASE WHEN $2 = 'verified' THEN now() ELSE verified_at END WHERE id = $1 "
            "RETURNING user_id", provider_id, status)
        if user_id is None:
            raise NotFound(f"no provider with id {provider_id}")
        await self.forget_user(user_id)

    # --- sessions ----------------------------------------------------------------------------
    async def open_session(self, user_id: int) -> Session:
        session = Session(id=secrets.token_urlsafe(24), user_id=user_id, csrf=secrets.token_urlsafe(24))
        await self.redis.set(self.keys.session(session.id), msgspec.json.encode(session),
                             ex=self.session_ttl)
        return session

    async def load_session(self, session_id: str) -> Session | None:
        raw = await self.redis.get(self.keys.session(session_id))
        return msgspec.json.decode(raw, type=Session) if raw else None

    async def close_session(self, session_id: str) -> None:
        await self.redis.delete(self.keys.session(session_id))

    # --- API tokens --------------------------------------------------------------------------
    async def create_token(self, user_id: int, name: str) -> NewToken:
        token = "kw_" + secrets.token_urlsafe(32)
        row = await self.pool.fetchrow(
            "INSERT INTO api_tokens (user_id, name, token_hash, prefix) VALUES ($1, $2, $3, $4) "
            "RETURNING id, name, prefix, created_at, last_used_at",
            user_id, name, _token_digest(token), token[:10])
        return NewToken(**dict(row), token=token)

    async def list_tokens(self, user_id: int) -> list[TokenInfo]:
        rows = await self.pool.fetch(
            "SELECT id, name, prefix, created_at, last_used_at FROM api_tokens "
            "WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id", user_id)
        return [TokenInfo(**dict(r)) for r in rows]

    async def revoke_token(self, user_id: int, token_id: int) -> None:
        digest = await self.pool.fetchval(
            "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND user_id = $2 "
            "AND revoked_at IS NULL RETURNING token_hash", token_id, user_id)
        if digest is None:
            raise NotFound(f"no active token with id {token_id}")
        await self.redis.set(self.keys.token(digest.hex()), _TOMBSTONE, ex=IDENTITY_CACHE_SECONDS)

    async def user_for_token(self, token: str) -> User | None:
        """The active user of an unrevoked token, else None."""
        digest = _token_digest(token)
        cache_key = self.keys.token(digest.hex())
        cached = await self.redis.get(cache_key)
        if cached is not None and cached != _TOMBSTONE:
            try:
                return await self.cached_user(int(cached))
            except NotFound:
                return None
        user_id = await self.pool.fetchval(
            "WITH t AS (SELECT t.id, t.user_id, t.last_used_at FROM api_tokens t "
            "           JOIN users u ON u.id = t.user_id "
            "           WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND u.is_active), "
            "bump AS (UPDATE api_tokens a SET last_used_at = now() FROM t WHERE a.id = t.id "
            "         AND (t.last_used_at IS NULL OR t.last_used_at < now() - make_interval(secs => $2))) "
            "SELECT user_id FROM t", digest, TOKEN_TOUCH_SECONDS)
        if user_id is None:
            return None
        await self.redis.set(cache_key, user_id, ex=IDENTITY_CACHE_SECONDS, nx=True)
        try:
            return await self.cached_user(user_id)
        except NotFound:  # deactivated meanwhile
            return None

    async def user_for_session(self, session_id: str) -> tuple[Session, User] | None:
        """The session and its (active) user; a session of a deactivated user is closed."""
        session = await self.load_session(session_id)
        if session is None:
            return None
        try:
            return session, await self.cached_user(session.user_id)
        except NotFound:
            await self.close_session(session_id)
            return None


def sign(secret: str, value: str) -> str:
    """`value.mac`: an HMAC-SHA256 tag so a cookie cannot be forged."""
    mac = hmac.new(secret.encode(), value.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{value}.{mac}"


def unsign(secret: str, signed: str) -> str | None:
    """The value of `sign` output when its tag is right (constant-time check), else None."""
    if not signed.isascii():  # ours always are; compare_digest refuses non-ASCII str
        return None
    value, _, mac = signed.rpartition(".")
    if not value:
        return None
    expected = sign(secret, value).rpartition(".")[2]
    return value if hmac.compare_digest(mac.encode(), expected.encode()) else None
