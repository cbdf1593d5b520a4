"""The development mailbox's store: what its SMTP server (fulfillment/mail/devbox.py) received,
kept in Redis under the key prefix, newest first, at most `cap` messages; the storefront's
/dev/mailbox page reads it. Knows no SMTP: messages are raw RFC 5322 bytes.
"""

from __future__ import annotations

import secrets
import time

import msgspec
import redis.asyncio as redis

from engine.keys import Keys

CAP = 500
TTL_SECONDS = 7 * 24 * 3600


class StoredMail(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    mail_from: str
    rcpt_to: list[str]
    received_at: float  # unix seconds
    raw: bytes


class Mailbox:
    def __init__(self, client: redis.Redis, keys: Keys, cap: int = CAP):
        self.client, self.keys, self.cap = client, keys, cap

    async def store(self, raw: bytes, mail_from: str, rcpt_to: list[str]) -> str:
        """Keep one received message; the oldest beyond `cap` are dropped."""
        mail_id = f"{time.time_ns() // 1_000_000:013d}{secrets.token_hex(4)}"
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.dev_mail(mail_id), mapping={
                "raw": raw, "from": mail_from, "to": msgspec.json.encode(rcpt_to),
                "at": repr(time.time())})
            pipe.expire(self.keys.dev_mail(mail_id), TTL_SECONDS)
            pipe.lpush(self.keys.dev_mailbox(), mail_id)
            pipe.lrange(self.keys.dev_mailbox(), self.cap, -1)
            pipe.ltrim(self.keys.dev_mailbox(), 0, self.cap - 1)
            *_, dropped, _ = await pipe.execute()
        if dropped:
            await self.client.delete(*(self.keys.dev_mail(m.decode()) for m in dropped))
        return mail_id

    async def ids(self, limit: int = CAP) -> list[str]:
        return [m.decode() for m in await self.client.lrange(self.keys.dev_mailbox(), 0, limit - 1)]

    async def get(self, mail_id: str) -> StoredMail | None:
        if not mail_id.isalnum() or len(mail_id) > 40:
            return None
        found = await self.client.hgetall(self.keys.dev_mail(mail_id))
        if not found:
            return None
        return StoredMail(id=mail_id, mail_from=found[b"from"].decode(errors="replace"),
                          rcpt_to=msgspec.json.decode(found[b"to"], type=list[str]),
                          received_at=float(found[b"at"]), raw=found[b"raw"])

    async def recent(self, limit: int = 100) -> list[StoredMail]:
        """The newest `limit` messages (any that expired meanwhile left out)."""
        mails = [await self.get(mail_id) for mail_id in await self.ids(limit)]
        return [m for m in mails if m is not None]
