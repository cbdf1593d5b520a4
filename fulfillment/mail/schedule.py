"""The mail scheduler, every minute in each mail worker: reminders 24 hours before an event,
refund-due notices, and the daily clean-up of old PDF tickets.

Several schedulers may run at once (one per worker): each picks candidates that have no email
log row yet (or one whose retry is due, or whose sender's lease ran out), and the log's claim
(UNIQUE (kind, dedupe key)) lets exactly one of them send each message.

- **Reminder**: one per confirmed order with a live ticket, for an event that is published and
  starts within `window` (24 h), unless the order was made within the last `fresh` (1 h: its
  tickets email has just come).
- **Refund-due notice**: one per payment that was marked `refund_due` (late, duplicate or of the
  wrong amount: no order of the record is paid by it), in the last 7 days, to the billing
  address its sale record keeps (else the account's).
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from engine.tickets.store import PdfStore
from fulfillment.mail.desk import MailDesk, UnknownOrder

log = logging.getLogger(__name__)
DAY = 24 * 3600

CLAIMABLE = """(l.id IS NULL OR (l.status = 'retrying' AND l.next_attempt_at <= now())
                OR (l.status = 'sending' AND l.lease_until < now()))"""

REMINDERS_DUE = f"""
    SELECT o.order_number FROM orders o
    JOIN events e ON e.id = o.event_id
    LEFT JOIN email_log l ON l.kind = 'reminder' AND l.dedupe_key = o.order_number
    WHERE e.status = 'published'
      AND e.starts_at > now() AND e.starts_at <= now() + make_interval(secs => $1)
      AND o.status = 'confirmed' AND o.sold_at <= now() - make_interval(secs => $2)
      AND EXISTS (SELECT 1 FROM tickets t WHERE t.order_id = o.id AND t.status IN ('valid', 'used'))
      AND {CLAIMABLE}
    ORDER BY e.starts_at, o.id LIMIT $3"""

REFUNDS_DUE = f"""
    SELECT p.reference, p.order_number, p.amount, p.currency, p.reason, e.title,
           coalesce(p.sale -> 'billing' ->> 'email', u.email) AS email,
           coalesce(p.sale -> 'billing' ->> 'name', u.name) AS name
    FROM payments p
    LEFT JOIN events e ON e.id = p.event_id
    LEFT JOIN users u ON u.id = CASE WHEN p.buyer ~ '^u:[0-9]{{1,18}}$'
                                     THEN substr(p.buyer, 3)::bigint END
    LEFT JOIN email_log l ON l.kind = 'refund_due' AND l.dedupe_key = p.reference
    WHERE p.state IN ('refund_due', 'refunding', 'refunded') AND p.amount > 0
      AND p.succeeded_at > now() - interval '7 days'
      AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.payment_reference = p.reference)
      AND coalesce(p.sale -> 'billing' ->> 'email', u.email) IS NOT NULL
      AND {CLAIMABLE}
    ORDER BY p.id LIMIT $1"""


class Scheduler:
    def __init__(self, pool: asyncpg.Pool, desk: MailDesk, store: PdfStore | None = None, *,
                 every: float = 60.0, window_seconds: float = DAY, fresh_seconds: float = 3600,
                 batch: int = 200, pdf_days: float = 30):
        self.pool, self.desk, self.store = pool, desk, store
        self.every = every
        self.window_seconds = window_seconds
        self.fresh_seconds = fresh_seconds
        self.batch = batch
        self.pdf_days = pdf_days
        self._cleaned = 0.0

    async def reminders(self) -> int:
        """Send the reminders due now; returns how many were sent by this call."""
        rows = await self.pool.fetch(REMINDERS_DUE, self.window_seconds, self.fresh_seconds,
                                     self.batch)
        sent = 0
        for row in rows:
            try:
                sent += (await self.desk.reminder(row["order_number"])).sent_now
            except UnknownOrder:  # deleted meanwhile
                continue
        return sent

    async def refunds(self) -> int:
        """Send the refund-due notices due now; returns how many were sent by this call."""
        rows = await self.pool.fetch(REFUNDS_DUE, self.batch)
        return sum([(await self.desk.refund_due(row)).sent_now for row in rows])

    async def once(self) -> dict[str, int]:
        done = {"reminders": await self.reminders(), "refund notices": await self.refunds()}
        if self.store is not None and time.monotonic() - self._cleaned > DAY:
            self._cleaned = time.monotonic()
            done["old PDF tickets removed"] = await self.store.cleanup(self.pdf_days)
        return done

    async def run(self, stop: asyncio.Event) -> None:
        """`once` every `every` seconds until `stop`; a failing pass is logged and retried."""
        while not stop.is_set():
            try:
                for what, count in (await self.once()).items():
                    if count:
                        log.info("mail scheduler: %s: %d", what, count)
            except Exception:  # Postgres away for a moment: the next pass retries
                log.exception("mail scheduler pass failed")
            try:
                await asyncio.wait_for(stop.wait(), self.every)
            except TimeoutError:
                pass
