"""The sandbox's state in Redis: payments, their timers and the webhook outbox.

A payment is one JSON value (`Keys.sandbox_payment`), changed only by `change`, an optimistic
transaction (WATCH/MULTI) that writes the new state, its timer and the webhook events the change
makes, all or nothing. So a double click, a replayed form or a timer racing the buyer changes a
payment once and emits its events once. Deliveries wait in a sorted set by due time; a process
claims one by removing it (ZREM answers 1 to one claimant only), so several storefront processes
can share the work. Every key expires after `TTL_SECONDS`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import NamedTuple

import msgspec
import redis.asyncio as redis
from redis.exceptions import WatchError

from engine.keys import Keys
from engine.payments.sandbox import Event
from engine.settings import Settings
from storefront.sandbox.rules import SandboxPayment, events_between

TTL_SECONDS = 3 * 24 * 3600
_decode_payment = msgspec.json.Decoder(SandboxPayment).decode
_encode = msgspec.json.Encoder().encode


class DuplicateReference(Exception):
    """The merchant reference was already used for a payment."""


class Job(msgspec.Struct, kw_only=True):
    """One webhook event to deliver, and the event to release once it is answered (reorder)."""

    url: str
    type: str
    body: str
    then: str | None = None


_decode_job = msgspec.json.Decoder(Job).decode


class Delivery(NamedTuple):
    """One attempt at one copy of one event; its outbox member is `<event>:<copy>:<attempt>`."""

    event_id: str
    copy: int
    attempt: int

    @property
    def member(self) -> str:
        return f"{self.event_id}:{self.copy}:{self.attempt}"

    @classmethod
    def parse(cls, member: str) -> Delivery:
        event_id, copy, attempt = member.rsplit(":", 2)
        return cls(event_id, int(copy), int(attempt))


def now_ms() -> int:
    return int(time.time() * 1000)


class SandboxStore:
    def __init__(self, client: redis.Redis, keys: Keys, settings: Settings):
        self.redis, self.keys, self.settings = client, keys, settings
        self.wake = asyncio.Event()  # set when something may be due: the dispatcher looks

    async def get(self, payment_id: str) -> SandboxPayment | None:
        raw = await self.redis.get(self.keys.sandbox_payment(payment_id))
        return _decode_payment(raw) if raw is not None else None

    async def by_reference(self, reference: str) -> SandboxPayment | None:
        payment_id = await self.redis.get(self.keys.sandbox_reference(reference))
        return await self.get(payment_id.decode()) if payment_id is not None else None

    async def create(self, payment: SandboxPayment) -> None:
        """Store a new payment; DuplicateReference when its reference was used before."""
        ref_key = self.keys.sandbox_reference(payment.reference)
        async with self.redis.pipeline(transaction=True) as pipe:
            await pipe.watch(ref_key)
            if await pipe.exists(ref_key):
                raise DuplicateReference(payment.reference)
            pipe.multi()
            pipe.set(ref_key, payment.id, ex=TTL_SECONDS)
            self._write(pipe, None, payment)
            try:
                await pipe.execute()
            except WatchError:  # the same reference, at the same moment
                raise DuplicateReference(payment.reference) from None
        self.wake.set()

    async def change(self, payment_id: str,
                     step: Callable[[SandboxPayment], SandboxPayment | None]
                     ) -> SandboxPayment | None:
        """Apply `step` to the payment atomically; `step` answers the new state, or None to
        leave it as it is (and may raise to refuse). Returns the payment as it now stands,
        None when there is no such payment."""
        key = self.keys.sandbox_payment(payment_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        return None
                    old = _decode_payment(raw)
                    new = step(old)
                    if new is None:
                        return old
                    pipe.multi()
                    new = self._write(pipe, old, new)
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        self.wake.set()
        return new

    def _write(self, pipe, old: SandboxPayment | None, new: SandboxPayment) -> SandboxPayment:
        """Queue in `pipe` the new state, its timer and the webhook events of the change."""
        settings = self.settings
        now = now_ms()
        events = events_between(old, new, now // 1000)
        chains: list[list[Event]]
        if settings.sandbox_webhook_reorder:
            # a payment's own events wait until it is final, then go out newest first
            held = list(new.held) + [e for e in events if e.type.startswith("payment.")]
            chains = [[e] for e in events if e.type == "refund.succeeded"]
            if new.final and held:
                chains.insert(0, held[::-1])
                held = []
            new = msgspec.structs.replace(new, held=held)
        else:
            chains = [[e] for e in events]
        pipe.set(self.keys.sandbox_payment(new.id), _encode(new), ex=TTL_SECONDS)
        if new.due_ms is not None:
            pipe.zadd(self.keys.sandbox_timers(), {new.id: new.due_ms})
        else:
            pipe.zrem(self.keys.sandbox_timers(), new.id)
        for chain in chains:
            for event, after in zip(chain, [*chain[1:], None], strict=True):
                job = Job(url=new.webhook_url, type=event.type, body=_encode(event).decode(),
                          then=after.id if after is not None else None)
                pipe.set(self.keys.sandbox_webhook(event.id), _encode(job), ex=TTL_SECONDS)
            self._enqueue(pipe, chain[0].id, now)
        return new

    def _enqueue(self, pipe, event_id: str, now: int) -> None:
        due = now + self.settings.sandbox_webhook_delay_ms
        copies = self.settings.sandbox_webhook_copies
        pipe.zadd(self.keys.sandbox_outbox(),
                  {Delivery(event_id, copy, 1).member: due for copy in range(copies)})

    # --- the dispatcher's side ----------------------------------------------------------------
    async def job(self, event_id: str) -> Job | None:
        raw = await self.redis.get(self.keys.sandbox_webhook(event_id))
        return _decode_job(raw) if raw is not None else None

    async def claim_timers(self, now: int, limit: int = 100) -> list[str]:
        """Payment ids whose timer is due, each claimed by this process alone."""
        return [m.decode() for m in await self._claim(self.keys.sandbox_timers(), now, limit)]

    async def claim_deliveries(self, now: int, limit: int = 100) -> list[Delivery]:
        return [Delivery.parse(m.decode())
                for m in await self._claim(self.keys.sandbox_outbox(), now, limit)]

    async def _claim(self, key: str, now: int, limit: int) -> list[bytes]:
        due = await self.redis.zrangebyscore(key, "-inf", now, start=0, num=limit)
        if not due:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for member in due:
                pipe.zrem(key, member)
            removed = await pipe.execute()
        return [member for member, gone in zip(due, removed, strict=True) if gone]

    async def retry_timer(self, payment_id: str, at: int) -> None:
        await self.redis.zadd(self.keys.sandbox_timers(), {payment_id: at})

    async def retry(self, delivery: Delivery, at: int) -> None:
        nxt = Delivery(delivery.event_id, delivery.copy, delivery.attempt + 1)
        await self.redis.zadd(self.keys.sandbox_outbox(), {nxt.member: at})

    async def release(self, event_id: str) -> None:
        """Queue the next event of a reordered chain."""
        async with self.redis.pipeline(transaction=False) as pipe:
            self._enqueue(pipe, event_id, now_ms())
            await pipe.execute()
        self.wake.set()

    async def next_due(self) -> int | None:
        """When (ms) the earliest timer or delivery is due; None when nothing waits."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrange(self.keys.sandbox_timers(), 0, 0, withscores=True)
            pipe.zrange(self.keys.sandbox_outbox(), 0, 0, withscores=True)
            firsts = await pipe.execute()
        scores = [int(found[0][1]) for found in firsts if found]
        return min(scores) if scores else None
