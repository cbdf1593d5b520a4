"""Gate staff: a provider invites people by email to scan all of its events or some of them.

An invitation is a random token (`gi_...`, shown once in the link, stored as its SHA-256),
valid for `INVITE_DAYS`. Accepting it, a new person makes an account of role `staff` with the
invited email; someone who has an account already accepts while logged in to it (the email must
match). Either way a `gate_staff` row ties the user to the provider (a second invitation widens
or narrows the events). A staff member's gate pages list only the events they may scan; removing
them ends their access at once in this process and within seconds in others.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec

from engine.accounts import Accounts, Registration, User
from engine.checkin.access import GateAccess
from engine.errors import Conflict, Invalid, NotFound

INVITE_DAYS = 7
MAX_EVENTS = 200


class Invite(msgspec.Struct, kw_only=True):
    id: int
    email: str
    all_events: bool
    event_ids: list[int]
    expires_at: datetime
    accepted_at: datetime | None = None


class NewInvite(Invite, kw_only=True):
    token: str  # shown once: the link's `?token=`


class Member(msgspec.Struct, kw_only=True):
    user_id: int
    email: str
    name: str
    all_events: bool
    event_ids: list[int]


class GateEvent(msgspec.Struct, kw_only=True):
    id: int
    title: str
    starts_at: datetime
    venue: str
    role: str  # provider | staff


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Staff:
    def __init__(self, pool: asyncpg.Pool, accounts: Accounts, access: GateAccess):
        self.pool, self.accounts, self.access = pool, accounts, access

    async def invite(self, provider_id: int, by: int, email: str,
                     event_ids: list[int] | None) -> NewInvite:
        """Invite `email` to scan all of the provider's events (`event_ids` None) or those."""
        ids = sorted(set(event_ids or []))
        if event_ids is not None and not 1 <= len(ids) <= MAX_EVENTS:
            raise Invalid(f"name 1 to {MAX_EVENTS} events, or none for all",
                          fields={"event_ids": "count"})
        if ids:
            own = await self.pool.fetchval(
                "SELECT count(*) FROM events WHERE provider_id = $1 AND id = ANY ($2::bigint[])",
                provider_id, ids)
            if own != len(ids):
                raise NotFound("one of these events is not yours", fields={"event_ids": "unknown"})
        token = "gi_" + secrets.token_urlsafe(24)
        row = await self.pool.fetchrow(
            "INSERT INTO gate_invites (provider_id, email, token_hash, all_events, event_ids, "
            "invited_by, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "RETURNING id, email, all_events, event_ids, expires_at, accepted_at",
            provider_id, email.strip(), _digest(token), event_ids is None, ids, by,
            datetime.now(UTC) + timedelta(days=INVITE_DAYS))
        return NewInvite(**dict(row), token=token)

    async def invites(self, provider_id: int) -> list[Invite]:
        rows = await self.pool.fetch(
            "SELECT id, email, all_events, event_ids, expires_at, accepted_at FROM gate_invites "
            "WHERE provider_id = $1 ORDER BY id DESC LIMIT 200", provider_id)
        return [Invite(**dict(r)) for r in rows]

    async def pending(self, token: str) -> asyncpg.Record:
        """The open invitation of `token` (with its provider's name), or NotFound."""
        row = await self.pool.fetchrow(
            "SELECT i.*, sp.business_name FROM gate_invites i "
            "JOIN service_providers sp ON sp.id = i.provider_id WHERE i.token_hash = $1 "
            "AND i.accepted_at IS NULL AND i.expires_at > now()", _digest(token))
        if row is None:
            raise NotFound("this invitation is unknown, used or expired", code="invite_invalid")
        return row

    async def accept(self, token: str, user: User | None, *, name: str | None = None,
                     password: str | None = None) -> User:
        """Accept as `user` (logged in: their email must be the invited one), or, with nobody
        logged in, as a new staff account made from `name` and `password`."""
        invite = await self.pending(token)
        if user is None:
            try:
                data = msgspec.convert({"email": invite["email"], "name": name or "",
                                        "password": password or ""}, Registration)
            except msgspec.ValidationError as exc:
                where = str(exc).rpartition("$.")[2].rstrip("`") or "name"
                raise Invalid(f"check your {where}", fields={where: str(exc)}) from None
            user = await self.accounts.register(data, "staff")
        elif user.email.strip().lower() != invite["email"].strip().lower():
            raise Conflict(f"this invitation is for {invite['email']}; log in as that account",
                           code="invite_other_email")
        async with self.pool.acquire() as conn, conn.transaction():
            taken = await conn.fetchval(
                "UPDATE gate_invites SET accepted_at = now(), accepted_by = $2 "
                "WHERE id = $1 AND accepted_at IS NULL RETURNING id", invite["id"], user.id)
            if taken is None:
                raise NotFound("this invitation is unknown, used or expired", code="invite_invalid")
            await conn.execute(
                "INSERT INTO gate_staff (provider_id, user_id, all_events, event_ids, invited_by) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (provider_id, user_id) DO UPDATE SET "
                "all_events = EXCLUDED.all_events, event_ids = EXCLUDED.event_ids",
                invite["provider_id"], user.id, invite["all_events"], invite["event_ids"],
                invite["invited_by"])
        await self.access.forget(user.id)
        return user

    async def members(self, provider_id: int) -> list[Member]:
        rows = await self.pool.fetch(
            "SELECT s.user_id, u.email, u.name, s.all_events, s.event_ids FROM gate_staff s "
            "JOIN users u ON u.id = s.user_id WHERE s.provider_id = $1 ORDER BY u.name",
            provider_id)
        return [Member(**dict(r)) for r in rows]

    async def remove(self, provider_id: int, user_id: int) -> None:
        """Remove a member; the provider's invitations to their email still open end too (an
        older link must not bring them back)."""
        async with self.pool.acquire() as conn, conn.transaction():
            done = await conn.execute(
                "DELETE FROM gate_staff WHERE provider_id = $1 AND user_id = $2",
                provider_id, user_id)
            if done.endswith(" 0"):
                raise NotFound("no such staff member")
            await conn.execute(
                "UPDATE gate_invites i SET expires_at = now() FROM users u WHERE u.id = $2 "
                "AND i.provider_id = $1 AND i.accepted_at IS NULL AND i.expires_at > now() "
                "AND lower(i.email) = lower(u.email)", provider_id, user_id)
        await self.access.forget(user_id)

    async def events_for(self, user: User) -> list[GateEvent]:
        """Events whose gate `user` may work, not over more than a day ago, soonest first."""
        rows = await self.pool.fetch(
            "SELECT e.id, e.title, e.starts_at, e.venue, "
            "  CASE WHEN $2 OR e.provider_id = $3 THEN 'provider' ELSE 'staff' END AS role "
            "FROM events e WHERE e.status IN ('published', 'postponed', 'completed') "
            "AND e.ends_at > now() - interval '1 day' AND ($2 OR e.provider_id = $3 OR EXISTS ("
            "  SELECT 1 FROM gate_staff s WHERE s.user_id = $1 AND s.provider_id = e.provider_id "
            "  AND (s.all_events OR e.id = ANY (s.event_ids)))) ORDER BY e.starts_at, e.id LIMIT 100",
            user.id, user.role == "admin",
            user.provider_id if user.role == "provider" else None)
        return [GateEvent(**dict(r)) for r in rows]
