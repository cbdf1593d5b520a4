"""The deliveries consumer: reads `Keys.deliveries()` in the consumer group `mail` and sends
what each entry asks for, through the mail desk (each message once, by the email log).

Entry format v1 (fields, all text):

    order    the order number (required, but for "staff_invite")
    event    the event id (informational; the record says which event the order is of)
    kind     "tickets" (default: a new order, its tickets to the buyer and the notice to the
             provider), "resend" (the order's tickets again) or "transfer" (one ticket to its
             new attendee)
    ticket   the ticket number, for "transfer" (sent at its current generation, once per
             generation)
    request  for "resend": an id of the request, so that one request is one email (default: the
             entry's own id, which a redelivery keeps)
    invite   for "staff_invite": the gate staff invitation's id, and `token` its secret (the
             link's; the record keeps only its hash): the invitation to the invited address

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

from engine.keys import Keys
from fulfillment.mail.desk import MailDesk, UnknownOrder
from fulfillment.mail.postman import Outcome
from fulfillment.streams import ensure_group, trim_acknowledged

log = logging.getLogger(__name__)
GROUP = "mail"
KINDS = ("tickets", "resend", "transfer", "staff_invite")
UNAVAILABLE = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
               asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError)


class Malformed(ValueError):
    pass


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    order: str
    kind: str = "tickets"
    ticket: str | None = None
    request: str | None = None
    invite: int | None = None
    token: str | None = None


def read_delivery(entry_id: bytes, fields: dict[bytes, bytes]) -> Delivery:
    """An entry of the deliveries stream (format above); Malformed when it is not one."""
    try:
        text = {k.decode(): v.decode() for k, v in fields.items()}
    except UnicodeDecodeError:
        raise Malformed("not UTF-8") from None
    order = text.get("order", "").strip()
    kind = text.get("kind", "").strip() or "tickets"
    if kind == "staff_invite":
        invite, token = text.get("invite", "").strip(), text.get("token", "").strip()
        if not invite.isdigit() or len(invite) > 18 or not 10 <= len(token) <= 100:
            raise Malformed("a staff invitation names no invitation or token")
        return Delivery(order="", kind=kind, invite=int(invite), token=token)
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
    """The consumer. `concurrency` entries are handled at once, each in a task of its own (so
    the PDFs of different orders render side by side in the process pool); each is acknowledged
    as it settles, in whatever order (a consumer group does not mind). `run` keeps that many in
    flight; on `stop` it reads nothing more, lets the ones in flight finish for up to
    `drain_seconds` and cancels the rest (they stay pending: this worker, or another by
    XAUTOCLAIM, takes them up again; the email log keeps each message once)."""

    def __init__(self, client: redis.Redis, keys: Keys, desk: MailDesk, *,
                 consumer: str | None = None, claim_idle_ms: int = 60_000, batch: int = 20,
                 max_failures: int = 5, unavailable_wait: float = 5.0, concurrency: int = 2,
                 drain_seconds: float = 30.0):
        self.client, self.keys, self.desk = client, keys, desk
        self.stream = keys.deliveries()
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.claim_idle_ms = claim_idle_ms
        self.batch = batch
        self.max_failures = max_failures
        self.unavailable_wait = unavailable_wait
        self.concurrency = max(1, concurrency)
        self.drain_seconds = drain_seconds
        self._waiting: dict[bytes, float] = {}  # entry id -> monotonic time to try again
        self._failures: dict[bytes, int] = {}
        self._grouped = False
        self._slots = asyncio.Semaphore(self.concurrency)
        self._in_flight: dict[bytes, asyncio.Task[int]] = {}
        self._settled = 0  # entries acknowledged since the stream was last trimmed

    async def _group(self) -> None:
        if self._grouped:
            return
        await ensure_group(self.client, self.stream, GROUP)
        self._grouped = True

    async def round(self) -> int:
        """One pass: up to `batch` entries (this worker's whose wait is over, new ones, then
        those idle in dead workers' hands), `concurrency` at a time; returns once they are all
        handled, with how many were settled (acknowledged)."""
        started = await self.dispatch(self.batch)
        done = sum(await asyncio.gather(*started))
        if self._settled:
            self._settled = 0
            await self._trim()
        return done

    async def dispatch(self, limit: int) -> list[asyncio.Task[int]]:
        """Start handling up to `limit` entries, each in its own task (which waits for one of
        the `concurrency` slots); returns the tasks started."""
        await self._group()
        started: list[asyncio.Task[int]] = []

        def start(entry_id: bytes, fields: dict[bytes, bytes] | None) -> None:
            if entry_id in self._in_flight:  # XAUTOCLAIM can hand back one of our own
                return
            task = asyncio.create_task(self._handle_in_slot(entry_id, fields),
                                       name=f"delivery {entry_id.decode()}")
            self._in_flight[entry_id] = task
            task.add_done_callback(lambda _t, e=entry_id: self._in_flight.pop(e, None))
            started.append(task)

        now = time.monotonic()
        due = [entry_id for entry_id, at in self._waiting.items()
               if at <= now and entry_id not in self._in_flight][:limit]
        if due:
            for entry_id, fields in await self.client.xclaim(
                    self.stream, GROUP, self.consumer, 0, due):
                start(entry_id, fields)
            for entry_id in due:  # acknowledged or trimmed meanwhile: nothing left to do
                if entry_id not in self._in_flight \
                        and self._waiting.get(entry_id, float("inf")) <= now:
                    self._waiting.pop(entry_id, None)
        if len(started) < limit:
            fresh = await self.client.xreadgroup(GROUP, self.consumer, {self.stream: ">"},
                                                 count=limit - len(started))
            for _, entries in fresh:
                for entry_id, fields in entries:
                    start(entry_id, fields)
        if len(started) < limit:
            claimed = await self.client.xautoclaim(
                self.stream, GROUP, self.consumer, min_idle_time=self.claim_idle_ms,
                start_id="0-0", count=limit - len(started))
            for entry_id, fields in claimed[1]:
                if self._waiting.get(entry_id, 0) <= time.monotonic():
                    start(entry_id, fields)
        return started

    async def _handle_in_slot(self, entry_id: bytes, fields: dict[bytes, bytes] | None) -> int:
        async with self._slots:
            try:
                settled = await self.handle(entry_id, fields)
            except Exception:  # Redis away while acknowledging: the entry stays pending
                log.exception("delivery %s could not be settled", entry_id.decode())
                self._waiting[entry_id] = time.monotonic() + self.unavailable_wait
                return 0
        self._settled += settled
        return settled

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
        if delivery.kind == "staff_invite":
            return [await self.desk.staff_invite(delivery.invite or 0, delivery.token or "")]
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
        """Drop what the group acknowledged."""
        await trim_acknowledged(self.client, self.stream, GROUP)

    async def run(self, stop: asyncio.Event, idle: float = 0.2) -> None:
        """Keep `concurrency` entries in flight until `stop` is set: whenever a slot is free,
        read as many entries as there are free slots (XREADGROUP COUNT free). A failing read is
        logged and retried. Returns once nothing is in flight any more."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                free = self.concurrency - len(self._in_flight)
                started: list[asyncio.Task[int]] = []
                if free > 0:
                    try:
                        started = await self.dispatch(free)
                        if self._settled:
                            self._settled = 0
                            await self._trim()
                    except Exception:  # Redis away for a moment: the next pass retries
                        log.exception("mail delivery round failed")
                if stop.is_set():
                    break
                if started and len(self._in_flight) < self.concurrency:
                    continue  # read on while there are entries and free slots
                # every slot busy, or nothing more to read: until one finishes, or a moment
                await asyncio.wait([stopping, *self._in_flight.values()], timeout=idle,
                                   return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            await self._drain()

    async def _drain(self) -> None:
        """Let the entries in flight finish (at most `drain_seconds`), then cancel the rest."""
        tasks = list(self._in_flight.values())
        if not tasks:
            return
        try:
            await asyncio.wait(tasks, timeout=self.drain_seconds)
        finally:  # also when we are cancelled ourselves while waiting
            late = [t for t in tasks if not t.done()]
            for task in late:
                task.cancel()
            if late:
                log.warning("%d deliveries cancelled at shutdown; they stay pending", len(late))
            await asyncio.gather(*tasks, return_exceptions=True)
