"""One message, once: claim it in the email log, build what it carries, send it, record the
outcome. Every attempt is logged (the row's `attempts`, `error`, `status`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.errors import HeaderParseError

from engine.settings import Settings
from fulfillment.mail.log import Claim, EmailLog
from fulfillment.mail.message import Attachment, Letter, compose, new_message_id
from fulfillment.mail.smtp import PermanentFailure, SmtpMailer, TemporaryFailure

log = logging.getLogger(__name__)
Attach = Callable[[], Awaitable[list[Attachment]]]


@dataclass(frozen=True)
class Outcome:
    """`sent`, `failed` or `skipped` (settled: nothing more will happen), or `waiting` (a retry is due in
    `retry_in` seconds, or another worker is sending it)."""

    status: str
    retry_in: float | None = None
    before: bool = False  # settled by an earlier call (another worker, an earlier delivery)

    @property
    def sent_now(self) -> bool:
        return self.status == "sent" and not self.before

    @property
    def settled(self) -> bool:
        return self.status in ("sent", "failed", "skipped")


class Postman:
    def __init__(self, email_log: EmailLog, mailer: SmtpMailer, settings: Settings, *,
                 recheck_seconds: float = 1.0):
        self.log = email_log
        self.recheck_seconds = recheck_seconds  # how soon to look again at another's send
        self.mailer = mailer
        self.sender = settings.mail_from
        self.sender_name = settings.mail_from_name
        self.domain = settings.mail_from.rpartition("@")[2]

    async def send_once(self, kind: str, key: str, letter: Letter, *,
                        order_number: str | None = None, attach: Attach | None = None) -> Outcome:
        """Send `letter` unless the message (kind, key) was sent, failed for good, or is in
        another worker's hands. `attach` makes its attachments, only once it is claimed."""
        claim = await self.log.claim(kind, key, to=letter.to, subject=letter.subject,
                                     order_number=order_number,
                                     message_id=new_message_id(self.domain))
        if not isinstance(claim, Claim):
            if claim.settled:
                return Outcome(claim.status, before=True)
            if claim.status == "sending":  # another worker is at it: likely done in a moment
                return Outcome("waiting", min(claim.retry_in or 0.0, self.recheck_seconds))
            return Outcome("waiting", claim.retry_in)
        where = f"{kind} email {key} (try {claim.attempt})"
        try:
            if attach is not None:
                letter.attachments = await attach()
        except Exception as exc:  # the PDF pool or Postgres away for a moment
            log.exception("%s: its attachments could not be made", where)
            return await self._temporary(claim, where, f"attachments: {exc!r}")
        try:
            raw = await asyncio.to_thread(compose, letter, sender=self.sender,
                                          sender_name=self.sender_name,
                                          message_id=claim.message_id)
        except (ValueError, HeaderParseError) as exc:  # an address no message can carry
            await self.log.failed(claim, f"cannot be written: {exc}")
            log.error("%s failed for good: cannot be written (%s)", where, exc)
            return Outcome("failed")
        try:
            await self.mailer.send(raw, self.sender, [letter.to])
        except PermanentFailure as exc:
            await self.log.failed(claim, exc.reason)
            log.error("%s failed for good: %s", where, exc.reason)
            return Outcome("failed")
        except TemporaryFailure as exc:
            return await self._temporary(claim, where, exc.reason)
        await self.log.sent(claim)
        log.info("%s sent", where)
        return Outcome("sent")

    async def _temporary(self, claim: Claim, where: str, reason: str) -> Outcome:
        wait = await self.log.retry_later(claim, reason)
        if wait is not None:
            log.warning("%s will be tried again in %.1f s: %s", where, wait, reason)
            return Outcome("waiting", wait)
        log.error("%s failed for good after %d tries: %s", where, claim.attempt, reason)
        return Outcome("failed")
