"""The SMTP client: one connection per message (aiosmtplib, never blocking the loop), and the
line between a failure worth trying again and one that is final.

- Temporary (`TemporaryFailure`): a 4xx reply, no connection, a timeout, a dropped line, and
  also a refused login or a failed STARTTLS, which are the configuration's fault, not the
  message's: the message waits for the configuration to be fixed rather than being lost.
- Permanent (`PermanentFailure`): any other 5xx reply (a mailbox that does not exist, a message
  refused), or an address that cannot be written.
"""

from __future__ import annotations

import logging

import aiosmtplib

from engine.settings import Settings

log = logging.getLogger(__name__)


class MailFailure(Exception):
    """Sending failed; `reason` says why in one line (an SMTP reply or the error's name)."""

    def __init__(self, reason: str, code: int | None = None):
        super().__init__(reason)
        self.reason, self.code = reason, code


class TemporaryFailure(MailFailure):
    pass


class PermanentFailure(MailFailure):
    pass


class SmtpMailer:
    """Sends composed messages to the configured SMTP server. The password is handed to the
    client only; it is never logged or put in an error."""

    def __init__(self, settings: Settings):
        if not settings.smtp_host:
            raise ValueError("no SMTP host: set KWIKA_SMTP_HOST (or run `kwika up`)")
        self.host = settings.smtp_host
        self.port = settings.smtp_port_or_default
        self.username = settings.smtp_username or None
        self.password = str(settings.smtp_password) or None
        self.security = settings.smtp_security
        self.timeout = settings.smtp_timeout_seconds

    async def send(self, raw: bytes, sender: str, recipients: list[str]) -> str:
        """Send `raw` (a composed message); the server's reply to its data on success."""
        try:
            refused, reply = await aiosmtplib.send(
                raw, sender=sender, recipients=recipients, hostname=self.host, port=self.port,
                username=self.username, password=self.password, timeout=self.timeout,
                use_tls=self.security == "tls",
                start_tls=self.security == "starttls")
        except aiosmtplib.SMTPRecipientsRefused as exc:
            worst = max((e.code for e in exc.recipients), default=550)
            reasons = "; ".join(f"{e.code} {e.message}" for e in exc.recipients)
            raise _by_code(worst, f"recipient refused: {reasons}") from None
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise TemporaryFailure(f"SMTP login refused ({exc.code}): check KWIKA_SMTP_USERNAME "
                                   "and KWIKA_SMTP_PASSWORD", exc.code) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise _by_code(exc.code, f"{exc.code} {exc.message}") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise TemporaryFailure(f"{type(exc).__name__}: {exc}"[:500]) from None
        if refused:  # some recipients refused, the others accepted (we send to one only)
            answer = next(iter(refused.values()))
            raise _by_code(answer.code, f"recipient refused: {answer.code} {answer.message}")
        return reply


def _by_code(code: int, reason: str) -> MailFailure:
    reason = " ".join(reason.split())[:500]
    if 500 <= code < 600:
        return PermanentFailure(reason, code)
    return TemporaryFailure(reason, code)
