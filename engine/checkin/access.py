"""Who may work the gate of an event: an admin, the event's provider, and the provider's gate
staff for all its events or for the events their membership names (engine/checkin/staff.py).

A scan must not wait on Postgres, so the answer is cached: in Redis for a minute per user and
event (`Keys.gate_access`, dropped when the user's membership changes) and in this process for
`LOCAL_SECONDS`, so a removed staff member's device stops within that long everywhere.
Forgetting a user leaves a tombstone field in their cache hash for a cache lifetime, and while it
is there nothing in that hash is believed: an answer looked up before the change and written
after it cannot grant anything.
"""

from __future__ import annotations

import time

import asyncpg
import redis.asyncio as redis

from engine.accounts import User
from engine.keys import Keys

REDIS_SECONDS = 60
LOCAL_SECONDS = 5.0
_LOCAL_MAX = 50_000
_TOMBSTONE = "-"  # a field of the cache hash: the user's membership changed, ask Postgres


class GateAccess:
    def __init__(self, pool: asyncpg.Pool, client: redis.Redis, keys: Keys):
        self.pool, self.client, self.keys = pool, client, keys
        self._local: dict[tuple[int, int], tuple[float, str]] = {}

    async def role_at(self, user: User, event_id: int) -> str | None:
        """`provider` (the event's own provider, or an admin), `staff`, or None (not allowed,
        or no such event)."""
        key = (user.id, event_id)
        now = time.monotonic()
        hit = self._local.get(key)
        if hit is not None and hit[0] > now:
            return hit[1] or None
        cache = self.keys.gate_access(user.id)
        raw, changed = await self.client.hmget(cache, [str(event_id), _TOMBSTONE])
        if changed is not None:  # membership changed within the cache lifetime
            role = await self._lookup(user, event_id)
        elif raw is None:
            role = await self._lookup(user, event_id)
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.hset(cache, str(event_id), role)
                pipe.ttl(cache)
                _, ttl = await pipe.execute()
            if ttl < 0:  # made just now: it lives REDIS_SECONDS from its first entry
                await self.client.expire(cache, REDIS_SECONDS)  # (EXPIRE NX needs Redis 7)
        else:
            role = raw.decode()
        if len(self._local) > _LOCAL_MAX:
            self._local.clear()
        self._local[key] = (now + LOCAL_SECONDS, role)
        return role or None

    async def _lookup(self, user: User, event_id: int) -> str:
        row = await self.pool.fetchrow(
            "SELECT e.provider_id, EXISTS (SELECT 1 FROM gate_staff s WHERE s.user_id = $2 "
            "  AND s.provider_id = e.provider_id AND (s.all_events OR e.id = ANY (s.event_ids))) "
            "  AS staff FROM events e WHERE e.id = $1", event_id, user.id)
        if row is None:
            return ""
        if user.role == "admin" or (user.role == "provider"
                                    and user.provider_id == row["provider_id"]):
            return "provider"
        return "staff" if row["staff"] else ""

    async def forget(self, user_id: int) -> None:
        """Drop what is cached about `user_id` (their membership changed), and distrust for a
        cache lifetime whatever a lookup already under way writes there."""
        cache = self.keys.gate_access(user_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(cache)
            pipe.hset(cache, _TOMBSTONE, "1")
            pipe.expire(cache, REDIS_SECONDS)
            await pipe.execute()
        for key in [k for k in self._local if k[0] == user_id]:
            del self._local[key]
