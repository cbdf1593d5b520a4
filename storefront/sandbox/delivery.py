"""The sandbox's background work: fire payment timers (a push answered, a transfer seen) and
deliver webhooks, off the request path.

One task per storefront process (`/readyz` shows it as `sandbox`), cancelled at shutdown. Each
delivery is signed when it is sent (`Kwika-Signature`, engine/payments/signing.py); a non-2xx
answer, a timeout or a refused connection is retried after the backoff (doubling, at most a
minute) until `KWIKA_SANDBOX_WEBHOOK_ATTEMPTS` is reached, then given up and logged. Like a real
gateway's, delivery is at least once while the sandbox runs: a delivery claimed by a process
that dies before sending it is lost, and Kwika asks for the payment's status instead.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from engine.payments import signing
from storefront.sandbox.rules import timer_fired
from storefront.sandbox.store import Delivery, SandboxStore, now_ms

log = logging.getLogger("kwika.sandbox")
POLL_SECONDS = 0.5  # other processes' work is noticed within this
MAX_BACKOFF_MS = 60_000
SEND_TIMEOUT = aiohttp.ClientTimeout(total=10)
CONCURRENT_SENDS = 32


class Dispatcher:
    def __init__(self, store: SandboxStore, session: aiohttp.ClientSession):
        self.store, self.session = store, session
        self.settings = store.settings
        self._sending: set[asyncio.Task] = set()
        self._slots = asyncio.Semaphore(CONCURRENT_SENDS)

    async def run(self) -> None:
        """Forever, until cancelled: a failing pass is logged and retried."""
        me = asyncio.current_task()
        try:
            while True:
                if me is not None and me.cancelling():
                    # a library swallowed our cancellation on its way through (seen in a Redis
                    # call at shutdown): honour it anyway
                    raise asyncio.CancelledError
                self.store.wake.clear()
                try:
                    wait = await self._tick()
                except Exception:  # Redis away for a moment: log, wait, try again
                    log.exception("sandbox dispatcher pass failed")
                    wait = 1.0
                await self._sleep(wait)
        finally:
            for task in self._sending:
                task.cancel()
            await asyncio.gather(*self._sending, return_exceptions=True)

    async def _sleep(self, seconds: float) -> None:
        """Until `seconds` pass or this process queues work. (Not wait_for or timeout(): on
        Python 3.11 a cancellation arriving as the timeout expires is swallowed as a timeout.)"""
        woken = asyncio.ensure_future(self.store.wake.wait())
        try:
            await asyncio.wait({woken}, timeout=seconds)
        finally:
            woken.cancel()

    async def _tick(self) -> float:
        now = now_ms()
        for payment_id in await self.store.claim_timers(now):
            try:
                await self.store.change(payment_id, timer_fired)
            except Exception:
                log.exception("sandbox payment %s: timer failed, trying again", payment_id)
                await self.store.retry_timer(payment_id, now + 1000)
        for delivery in await self.store.claim_deliveries(now):
            task = asyncio.create_task(self._deliver(delivery), name=f"sandbox {delivery.member}")
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        due = await self.store.next_due()
        if due is None:
            return POLL_SECONDS
        return min(max(due - now_ms(), 0) / 1000, POLL_SECONDS)

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            async with self._slots:
                await self._send(delivery)
        except Exception:  # never let one delivery take the dispatcher down
            log.exception("sandbox webhook %s failed", delivery.member)

    async def _send(self, delivery: Delivery) -> None:
        job = await self.store.job(delivery.event_id)
        if job is None:
            return  # expired
        body = job.body.encode()
        headers = {"Content-Type": "application/json", "User-Agent": "Kwika-Sandbox/1",
                   signing.HEADER: signing.sign(self.settings.sandbox_webhook_secrets, body,
                                                int(time.time()))}
        try:
            async with self.session.post(job.url, data=body, headers=headers,
                                         timeout=SEND_TIMEOUT) as resp:
                status: int | str = resp.status
                await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            status = type(exc).__name__
        fields = {"event_id": delivery.event_id, "type": job.type, "copy": delivery.copy,
                  "attempt": delivery.attempt, "answer": status}
        if isinstance(status, int) and 200 <= status < 300:
            log.info("sandbox webhook %s %s delivered", delivery.event_id, job.type, extra=fields)
        elif delivery.attempt < self.settings.sandbox_webhook_attempts:
            backoff = min(self.settings.sandbox_webhook_backoff_ms * 2 ** (delivery.attempt - 1),
                          MAX_BACKOFF_MS)
            log.warning("sandbox webhook %s %s answered %s; retrying in %d ms", delivery.event_id,
                        job.type, status, backoff, extra=fields)
            await self.store.retry(delivery, now_ms() + backoff)
            self.store.wake.set()
            return
        else:
            log.error("sandbox webhook %s %s answered %s; giving up after %d attempts",
                      delivery.event_id, job.type, status, delivery.attempt, extra=fields)
        if delivery.copy == 0 and job.then is not None:
            await self.store.release(job.then)
