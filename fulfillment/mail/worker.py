"""The mail worker: the deliveries consumer and the scheduler, for `kwika worker` and for
`kwika up` (which runs it in its first server process)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass

import asyncpg
import redis.asyncio as redis

from engine.keys import Keys
from engine.settings import Settings
from engine.tickets import Keyring
from engine.tickets.store import PdfStore, TicketRenderer
from fulfillment.mail.delivery import Deliveries
from fulfillment.mail.desk import MailDesk
from fulfillment.mail.log import EmailLog
from fulfillment.mail.postman import Postman
from fulfillment.mail.schedule import Scheduler
from fulfillment.mail.smtp import SmtpMailer

log = logging.getLogger(__name__)


@dataclass
class MailWorker:
    deliveries: Deliveries
    scheduler: Scheduler
    desk: MailDesk
    renderer: TicketRenderer

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await asyncio.gather(self.deliveries.run(stop), self.scheduler.run(stop))
        finally:
            await self.renderer.close()


def mail_worker(settings: Settings, pool: asyncpg.Pool, client: redis.Redis, keys: Keys, *,
                consumer: str | None = None, renderer: TicketRenderer | None = None,
                claim_idle_ms: int = 60_000, schedule_every: float = 60.0) -> MailWorker:
    """The mail worker of `settings` (SMTP server, sender, retries, signing keys, PDF folder,
    how many deliveries at once: KWIKA_MAIL_CONCURRENCY, else the render pool's size, at least 2).
    Raises ValueError when email cannot be sent: no SMTP host, or no ticket signing key."""
    keyring = Keyring.parse(settings.ticket_signing_keys)
    if not keyring:
        raise ValueError("no ticket signing key (KWIKA_TICKET_SIGNING_KEYS): tickets cannot be "
                         "sent")
    consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
    renderer = renderer or TicketRenderer(settings.ticket_render_workers)
    store = PdfStore(settings.tickets_path, renderer)
    email_log = EmailLog(pool, worker=consumer, retry_seconds=settings.mail_retry_seconds,
                         max_attempts=settings.mail_max_attempts,
                         lease_seconds=max(300, 3 * settings.smtp_timeout_seconds))
    desk = MailDesk(pool, Postman(email_log, SmtpMailer(settings), settings), store, keyring,
                    settings)
    concurrency = settings.mail_concurrency or max(2, renderer.workers)
    return MailWorker(Deliveries(client, keys, desk, consumer=consumer,
                                 claim_idle_ms=claim_idle_ms, concurrency=concurrency,
                                 drain_seconds=settings.smtp_timeout_seconds + 5),
                      Scheduler(pool, desk, store, every=schedule_every), desk, renderer)


async def run_mail(settings: Settings, pool: asyncpg.Pool, client: redis.Redis, keys: Keys,
                   stop: asyncio.Event) -> None:
    """Send email until `stop` is set. Without an SMTP host (KWIKA_SMTP_HOST) or with
    KWIKA_MAIL=false nothing is sent: the deliveries wait in their stream for a worker that
    sends."""
    if not settings.mail or not settings.smtp_host:
        log.warning("email is not sent by this process (%s); deliveries wait in their stream",
                    "KWIKA_MAIL=false" if not settings.mail else "KWIKA_SMTP_HOST is not set")
        await stop.wait()
        return
    await mail_worker(settings, pool, client, keys).run(stop)
