"""The development mailbox: an SMTP server inside `kwika up` (when no SMTP server is
configured) that keeps what it receives in Redis (engine/mailbox.py), for the /dev/mailbox page.

aiosmtpd's Controller runs the server on an event loop of its own, in a thread, on 127.0.0.1 and
a free port; the mailer is pointed at it. It delivers nothing anywhere.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import redis.asyncio as redis
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from engine.keys import Keys
from engine.mailbox import Mailbox

log = logging.getLogger(__name__)
MAX_MESSAGE = 25 * 1024 * 1024


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class _Keeper:
    """The aiosmtpd handler: every message accepted is kept in the mailbox."""

    def __init__(self, redis_url: str, keys: Keys):
        self.redis_url, self.keys = redis_url, keys
        self.mailbox: Mailbox | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.mailbox is None:  # made on the server's own loop, on first use
            self.mailbox = Mailbox(redis.Redis.from_url(self.redis_url), self.keys)
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode()
        try:
            await self.mailbox.store(content, envelope.mail_from or "",
                                     list(envelope.rcpt_tos))
        except Exception:
            log.exception("development mailbox: a message could not be kept")
            return "451 Requested action aborted: local error in processing"
        return "250 Message accepted for delivery"

    async def close(self) -> None:
        if self.mailbox is not None:
            await self.mailbox.client.aclose()
            self.mailbox = None


class DevMailbox:
    """Start with `start()`, stop with `stop()`; `port` is where it listens."""

    def __init__(self, redis_url: str, keys: Keys, host: str = "127.0.0.1",
                 port: int | None = None):
        self.host = host
        self.port = port or free_port(host)
        self.keeper = _Keeper(redis_url, keys)
        self.controller = Controller(self.keeper, hostname=host, port=self.port,
                                     data_size_limit=MAX_MESSAGE, server_hostname="kwika-dev",
                                     ready_timeout=10)

    def start(self) -> None:
        self.controller.start()
        log.info("development mailbox: SMTP on %s:%d, read at /dev/mailbox", self.host, self.port)

    def stop(self) -> None:
        loop = self.controller.loop
        if loop.is_running():  # its Redis client is closed on its own loop
            asyncio.run_coroutine_threadsafe(self.keeper.close(), loop).result(10)
        self.controller.stop()
