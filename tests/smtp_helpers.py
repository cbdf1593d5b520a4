"""A real SMTP server for tests (aiosmtpd, on 127.0.0.1 and a free port, in a thread of its own)
that records what it accepts and can be told to answer the next messages otherwise (451, 550)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from aiosmtpd.controller import Controller

from fulfillment.mail.devbox import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_to: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return BytesParser(policy=policy.default).parsebytes(self.raw)  # type: ignore[return-value]

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def attachments(self) -> dict[str, bytes]:
        return {part.get_filename(): part.get_payload(decode=True)
                for part in self.message.iter_attachments()}

    def text(self) -> str:
        return self.message.get_body(preferencelist=("plain",)).get_content()

    def html(self) -> str:
        return self.message.get_body(preferencelist=("html",)).get_content()


@dataclass
class Inbox:
    """What the server accepted; `replies` are answered to the next messages instead of 250."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    refused: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope) -> str:
        with self._lock:
            if self.replies:
                self.refused += 1
                return self.replies.pop(0)
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          envelope.original_content))
        return "250 OK queued"

    def to(self, address: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if address in r.rcpt_to]

    def count(self) -> int:
        with self._lock:
            return len(self.received)


@contextmanager
def smtp_server(inbox: Inbox | None = None) -> Iterator[Inbox]:
    inbox = inbox or Inbox()
    inbox.port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port, ready_timeout=10)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()
