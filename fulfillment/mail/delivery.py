"""The deliveries consumer: reads `Keys.deliveries()` in the consumer group `mail` and sends
what each entry asks for, through the mail desk (each message once, by the email log).

Entry format v1 (fields, all text):

    order    the order number (required)
    event    the event id (informational; the record says which event the order is of)
    kind     "tickets" (default: a new order, its tickets to the buyer and the notice to the
             provider), "resend" (the order's tickets again) or "transfer" (one ticket to its
             new attendee)
    ticket   the ticket number, for "transfer" (sent at its current generation, once per
             generation)
    request  for "resend": an id of the request, so that one request is one email (default: the
             entry's own id, which a redelivery keeps)

- An entry is acknowledged only once every message it asks for is `sent` or `failed` for good
  (or skipped: no live ticket left). A temporary failure leaves it pending: this worker tries
  again when the email log's backoff is over; a worker that died leaves its entries to another
  one after `claim_idle_ms` (XAUTOCLAIM). A message the log has as sent is never sent again.
- An entry that can never be sent (malformed, an order the record does not have) goes to the
  dead letters at once, one that keeps failing after `max_failures` tries, with the reason.
  Postgres being away is not the entry's fault: it waits, uncounted.
- The stream is trimmed only below what the group has acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

import asyncpg
import msgspec
import redis.asyncio as redis
from redis.exceptions import ResponseError

from engine.keys import Keys
from fulfillment.mail.desk import MailDesk, UnknownOrder
from fulfillment.mail.postman import Outcome

log = logging.getLogger(__name__)
GROUP = "mail"
KINDS = ("tickets", "resend", "transfer")
UNAVAILABLE = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
               asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError)


class Malformed(ValueError):
    pass


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    order: str
    kind: str = "tickets"
    ticket: str | None = None
    request: str | None = None


def read_delivery(entry_id: bytes, fields: dict[bytes, bytes]) -> Delivery:
    """An entry of the deliveries stream (format above); Malformed when it is not one."""
    try:
        text = {k.decode(): v.decode() for k, v in fields.items()}
    except UnicodeDecodeError:
        raise Malformed("not UTF-8") from None
    order = text.get("order", "").strip()
    kind = text.get("kind", "").strip() or "tickets"
    if not order or len(order) > 100:
        raise Malformed("no order number")
    if kind not in KINDS:
        raise Malformed(f"unknown kind {kind[:20]!r}")
    ticket = text.get("ticket", "").strip() or None
    if kind == "transfer" and not ticket:
        raise Malformed("a transfer names no ticket")
    request = text.get("request", "").strip()[:100] or None
    if kind == "resend" and request is None:
        request = entry_id.decode()
    return Delivery(order=order, kind=kind, ticket=ticket, request=request)


class Deliveries:
    def __init__(self, client: redis.Redis, keys: Keys, desk: MailDesk, *,
                 consumer: str | None = None, claim_idle_ms: int = 60_000, batch: int = 20,
                 max_failures: int = 5, unavailable_wait: float = 5.0):
        self.client, self.keys, self.desk = client, keys, desk
        self.stream = keys.deliveries()
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.claim_idle_ms = claim_idle_ms
        self.batch = batch
        self.max_failures = max_failures
        self.unavailable_wait = unavailable_wait
        self._waiting: dict[bytes, float] = {}  # entry id -> monotonic time to try again
        self._failures: dict[bytes, int] = {}
        self._grouped = False

    async def _group(self) -> None:
        if self._grouped:
            return
        try:
            await self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._grouped = True

    async def round(self) -> int:
        """Entries of this worker whose wait is over, new entries, then entries idle in dead
        workers' hands. Returns how many were settled (acknowledged)."""
        await self._group()
        done = 0
        now = time.monotonic()
        due = [entry_id for entry_id, at in self._waiting.items() if at <= now][:self.batch]
        if due:
            for entry_id, fields in await self.client.xclaim(
                    self.stream, GROUP, self.consumer, 0, due):
                done += await self.handle(entry_id, fields)
            for entry_id in due:  # acknowledged or trimmed meanwhile: nothing left to do
                if self._waiting.get(entry_id, float("inf")) <= now:
                    self._waiting.pop(entry_id, None)
        fresh = await self.client.xreadgroup(GROUP, self.consumer, {self.stream: ">"},
                                             count=self.batch)
        for _, entries in fresh:
            for entry_id, fields in entries:
                done += await self.handle(entry_id, fields)
        claimed = await self.client.xautoclaim(self.stream, GROUP, self.consumer,
                                               min_idle_time=self.claim_idle_ms, start_id="0-0",
                                               count=self.batch)
        for entry_id, fields in claimed[1]:
            if self._waiting.get(entry_id, 0) <= time.monotonic():
                done += await self.handle(entry_id, fields)
        if done:
            await self._trim()
        return done

    async def handle(self, entry_id: bytes, fields: dict[bytes, bytes] | None) -> int:
        """Send what one entry asks for; 1 when it is settled (acknowledged), 0 when it waits."""
        if fields is None:  # trimmed or deleted under us
            await self._ack(entry_id)
            return 1
        try:
            delivery = read_delivery(entry_id, fields)
            outcomes = await self._send(delivery)
        except (Malformed, UnknownOrder) as exc:
            await self._dead(entry_id, fields, str(exc))
            return 1
        except UNAVAILABLE as exc:
            log.warning("delivery %s waits: Postgres unavailable (%s)", entry_id.decode(),
                        type(exc).__name__)
            self._waiting[entry_id] = time.monotonic() + self.unavailable_wait
            return 0
        except Exception as exc:
            log.exception("delivery %s failed", entry_id.decode())
            failures = self._failures[entry_id] = self._failures.get(entry_id, 0) + 1
            if failures >= self.max_failures:
                await self._dead(entry_id, fields, f"failed {failures} times: {exc!r}")
                return 1
            self._waiting[entry_id] = time.monotonic() + self.unavailable_wait
            return 0
        waiting = [o for o in outcomes if not o.settled]
        if waiting:
            wait = min((o.retry_in for o in waiting if o.retry_in is not None),
                       default=self.unavailable_wait)
            self._waiting[entry_id] = time.monotonic() + max(wait, 0.01)
            return 0
        await self._ack(entry_id)
        return 1

    async def _send(self, delivery: Delivery) -> list[Outcome]:
        if delivery.kind == "resend":
            return await self.desk.resend(delivery.order, delivery.request or "")
        if delivery.kind == "transfer":
            return await self.desk.transfer(delivery.order, delivery.ticket or "")
        return await self.desk.sold(delivery.order)

    async def _ack(self, entry_id: bytes) -> None:
        await self.client.xack(self.stream, GROUP, entry_id)
        self._waiting.pop(entry_id, None)
        self._failures.pop(entry_id, None)

    async def _dead(self, entry_id: bytes, fields: dict, reason: str) -> None:
        log.error("delivery %s goes to the dead letters: %s", entry_id.decode(), reason)
        await self.client.xadd(self.keys.dead_letters(), {
            b"source": b"deliveries", b"entry": entry_id, b"reason": reason.encode(),
            b"fields": msgspec.json.encode({k.decode(errors="replace"): v.decode(errors="replace")
                                            for k, v in fields.items()})})
        await self._ack(entry_id)

    async def _trim(self) -> None:
        """Drop what the group acknowledged: below its oldest pending entry, or below the last
        delivered one when none is pending."""
        pending = await self.client.xpending(self.stream, GROUP)
        if pending["pending"]:
            floor = pending["min"]
        else:
            groups = await self.client.xinfo_groups(self.stream)
            group = next((g for g in groups if g["name"] in (GROUP, GROUP.encode())), None)
            if group is None or group["last-delivered-id"] in (b"0-0", "0-0"):
                return
            floor = group["last-delivered-id"]
        await self.client.xtrim(self.stream, minid=floor, approximate=False)

    async def run(self, stop: asyncio.Event, idle: float = 0.2) -> None:
        """Rounds until `stop` is set; a failing round is logged and retried."""
        while not stop.is_set():
            try:
                done = await self.round()
            except Exception:  # Redis away for a moment: the next round retries
                log.exception("mail delivery round failed")
                done = 0
            if not done and not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), idle)
                except TimeoutError:
                    pass
