"""Accounts: users with roles, passwords, login sessions in Redis and API tokens.

Passwords are hashed with Argon2id on the executor, never on the event loop, and through a gate
that bounds how many hashes run at once (`engine.hashing`); logins and registrations are throttled
per client address, per account and address, and per account (`engine.login_limits`).
Sessions are random ids stored in Redis with a TTL; the cookie carries the id and an HMAC of it.
API tokens (`kw_<random>`) are shown once and stored as SHA-256 digests: a 256-bit random token
needs no slow hash, and a lookup by digest is constant work.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from concurrent.futures import Executor
from datetime import datetime
from typing import Annotated, Literal

import asyncpg
import msgspec
import redis.asyncio as redis
from msgspec import Meta, Struct

from engine.errors import Busy, Conflict, Invalid, NotFound, Unauthenticated
from engine.hashing import HashGate, PasswordHashing
from engine.inputs import ONE_LINE
from engine.keys import Keys
from engine.login_limits import LoginLimits
from engine.passwords import common_passwords, password_problem
from engine.settings import Settings
from engine.tokens import NewToken, Scope, TokenGrant, TokenInfo

Role = Literal["buyer", "provider", "staff", "admin"]
ROLES: tuple[str, ...] = ("buyer", "provider", "staff", "admin")
Email = Annotated[str, Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$(?!\n)")]
Password = Annotated[str, Meta(min_length=8, max_length=256)]
Name = Annotated[str, Meta(min_length=1, max_length=120, pattern=ONE_LINE)]

TOKEN_TOUCH_SECONDS = 60  # last_used_at is refreshed at most this often (no write per request)
# Identities (user, token -> user) are cached in Redis this long, so an authenticated request
# (a hold in a rush) touches Redis only. Changes made through Accounts take effect at once;
# a change made behind its back (SQL) within this time.
IDENTITY_CACHE_SECONDS = 60
# An invalidated entry is replaced by this tombstone for a cache lifetime, and entries are only
# ever written with NX: a read that began before the invalidation cannot put stale data back.
_TOMBSTONE = b"-"
# `user_for_token(..., local_seconds=)` may also keep what a token grants in this process for
# that long (the gate's scans: two Redis round trips fewer per scan); at most this many entries
_LOCAL_TOKENS_MAX = 10_000


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


class Session(Struct, kw_only=True):
    id: str
    user_id: int
    csrf: str


_TOKEN_COLUMNS = ", ".join(TokenInfo.__struct_fields__)


def _token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Accounts:
    """Users, sessions and tokens, as `settings` say: password hashing runs on `executor`, at
    most `password_hash_concurrency` at once with `password_hash_queue` more waiting (beyond:
    Busy); logins and registrations are throttled by `LoginLimits`."""

    def __init__(self, pool: asyncpg.Pool, redis_client: redis.Redis, keys: Keys,
                 executor: Executor | None, settings: Settings):
        gate = HashGate(executor, settings.password_hash_concurrency, settings.password_hash_queue)
        self.passwords = PasswordHashing(gate, settings.argon2_memory_kib, settings.argon2_time_cost)
        self.limits = LoginLimits(redis_client, keys, settings)
        self.pool = pool
        self.redis = redis_client
        self.keys = keys
        self.session_ttl = settings.session_ttl_seconds
        self._common_passwords = common_passwords()
        # token digest -> (fresh until (monotonic), user, scope, expires (Unix seconds) or None)
        self._local_tokens: dict[bytes, tuple[float, User, Scope, float | None]] = {}

    # --- users -------------------------------------------------------------------------------
    async def register(self, data: Registration, role: Role | None = None, *,
                       ip: str | None = None) -> User:
        """Create a user; providers also get a service-provider record (pending verification).

        `ip` is the client address, counted against the per-address registration limit
        (RateLimited beyond it); None for trusted callers (demo data, tests' setup). The password
        must pass `passwords.password_problem` (else Invalid on `password`); hashing may answer
        Busy when the server is saturated with password work."""
        if ip is not None:
            await self.limits.count("register", ip)
        role = role or ("provider" if data.account_type == "provider" else "buyer")
        if role == "provider" and not data.business_name:
            raise Invalid("providers need a business_name", fields={"business_name": "required"})
        problem = password_problem(data.password, email=data.email, name=data.name,
                                   common=self._common_passwords)
        if problem:
            raise Invalid(problem, code="weak_password", fields={"password": problem})
        password_hash = await self.passwords.hash(data.password)
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

    async def authenticate(self, creds: Credentials, *, ip: str) -> User:
        """The user for these credentials, or Unauthenticated (same answer for unknown email).

        `ip` is the client address. Before any password is checked, the attempt is counted per
        address and reserved per account and address (RateLimited when a limit is reached; see
        `engine.login_limits`); the check itself may answer Busy when the server is saturated
        with password work. The reserved attempt counts as a failure unless the password is right.
        """
        email = creds.email.strip().lower()
        await self.limits.count("login", ip)
        await self.limits.reserve(email, ip)
        row = await self.pool.fetchrow(
            "SELECT id, password_hash FROM users WHERE lower(email) = $1 AND is_active", email)
        stored = row["password_hash"] if row else self.passwords.dummy_hash  # same work when unknown
        if not (await self.passwords.verify(stored, creds.password) and row is not None):
            raise Unauthenticated("email or password is wrong", code="bad_credentials")
        await self.limits.succeeded(email, ip)
        if self.passwords.needs_rehash(stored):
            try:
                new_hash = await self.passwords.hash(creds.password)
            except Busy:
                pass  # an upgrade can wait for a quieter login; this one has succeeded
            else:
                await self.pool.execute("UPDATE users SET password_hash = $2 WHERE id = $1",
                                        row["id"], new_hash)
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
        for digest in [d for d, hit in self._local_tokens.items() if hit[1].id == user_id]:
            self._local_tokens.pop(digest, None)

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
    async def create_token(self, user_id: int, name: str, *, scope: Scope = "write",
                           expires_at: datetime | None = None) -> NewToken:
        """A new token of `user_id`. The default scope, `write`, is the user's whole authority
        (what tokens made before scopes existed have); `tokens.token_expiry` checks a requested
        `expires_at`."""
        token = "kw_" + secrets.token_urlsafe(32)
        row = await self.pool.fetchrow(
            "INSERT INTO api_tokens (user_id, name, token_hash, prefix, scope, expires_at) "
            f"VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_TOKEN_COLUMNS}",
            user_id, name, _token_digest(token), token[:10], scope, expires_at)
        return NewToken(**dict(row), token=token)

    async def list_tokens(self, user_id: int) -> list[TokenInfo]:
        """The user's unrevoked tokens, expired ones included (they show their expiry)."""
        rows = await self.pool.fetch(
            f"SELECT {_TOKEN_COLUMNS} FROM api_tokens "
            "WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id", user_id)
        return [TokenInfo(**dict(r)) for r in rows]

    async def revoke_token(self, user_id: int, token_id: int) -> None:
        digest = await self.pool.fetchval(
            "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND user_id = $2 "
            "AND revoked_at IS NULL RETURNING token_hash", token_id, user_id)
        if digest is None:
            raise NotFound(f"no active token with id {token_id}")
        self._local_tokens.pop(bytes(digest), None)
        await self.redis.set(self.keys.token(digest.hex()), _TOMBSTONE, ex=IDENTITY_CACHE_SECONDS)

    async def user_for_token(self, token: str, *,
                             local_seconds: float = 0) -> tuple[User, Scope] | None:
        """The active user of an unrevoked token, with the token's scope; None when the token is
        unknown or revoked or its user inactive. An expired token raises Unauthenticated
        (`token_expired`), whether its grant comes from Postgres or from the identity cache.

        With `local_seconds`, a grant found is also kept in this process that long and answered
        from there (no Redis round trip): revoking the token or changing its user through this
        object ends it at once here, and within `local_seconds` in other processes."""
        digest = _token_digest(token)
        now = time.monotonic()
        hit = self._local_tokens.get(digest) if local_seconds else None
        if hit is not None and hit[0] > now:
            if hit[3] is not None and hit[3] <= time.time():
                raise Unauthenticated("this API token has expired; make a new one",
                                      code="token_expired")
            return hit[1], hit[2]
        found = await self._user_for_token(digest)
        if found is not None and local_seconds:
            if len(self._local_tokens) >= _LOCAL_TOKENS_MAX:
                self._local_tokens.clear()
            self._local_tokens[digest] = (now + local_seconds, *found)
        return None if found is None else (found[0], found[1])

    async def _user_for_token(self, digest: bytes) -> tuple[User, Scope, float | None] | None:
        cache_key = self.keys.token(digest.hex())
        cached = await self.redis.get(cache_key)
        if cached is not None and cached != _TOMBSTONE:
            grant = msgspec.json.decode(cached, type=TokenGrant)
        else:
            row = await self.pool.fetchrow(
                "WITH t AS (SELECT t.id, t.user_id, t.scope, t.expires_at, t.last_used_at "
                "           FROM api_tokens t JOIN users u ON u.id = t.user_id "
                "           WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND u.is_active), "
                "bump AS (UPDATE api_tokens a SET last_used_at = now() FROM t WHERE a.id = t.id "
                "         AND (t.expires_at IS NULL OR t.expires_at > now()) "
                "         AND (t.last_used_at IS NULL "
                "              OR t.last_used_at < now() - make_interval(secs => $2))) "
                "SELECT user_id, scope, extract(epoch FROM expires_at)::float8 AS expires FROM t",
                digest, TOKEN_TOUCH_SECONDS)
            if row is None:
                return None
            grant = TokenGrant(user_id=row["user_id"], scope=row["scope"], expires=row["expires"])
            await self.redis.set(cache_key, msgspec.json.encode(grant), ex=IDENTITY_CACHE_SECONDS,
                                 nx=True)
        if grant.expired(time.time()):
            raise Unauthenticated("this API token has expired; make a new one",
                                  code="token_expired")
        try:
            return await self.cached_user(grant.user_id), grant.scope, grant.expires
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

