"""The development mailbox's pages: what the in-process SMTP server of `kwika up` received
(engine/mailbox.py), newest first, each with its text, its HTML and its attachments.

Mounted only when the development mailbox is on (`kwika up` with no SMTP server configured),
never otherwise: anyone who can reach the site can read it, which is the point in development
and would be a leak anywhere else. The HTML of a message is shown as escaped source on the page
and, rendered, on a page of its own under a sandboxing Content-Security-Policy (no scripts, no
requests, no forms).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from aiohttp import web

from engine.errors import NotFound
from engine.mailbox import Mailbox, StoredMail
from storefront.appkeys import KEYS, REDIS
from storefront.render import render

SANDBOX_CSP = ("sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
               "frame-ancestors 'none'")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
routes = web.RouteTableDef()


@dataclass
class Part:
    filename: str
    mime_type: str
    content: bytes


@dataclass
class Mail:
    id: str
    received_at: datetime
    envelope_from: str
    envelope_to: list[str]
    subject: str = ""
    sender: str = ""
    to: str = ""
    date: str = ""
    message_id: str = ""
    text: str = ""
    html: str = ""
    attachments: list[Part] = field(default_factory=list)


def parse(stored: StoredMail) -> Mail:
    """A received message, read (synchronous: callers run it in a thread)."""
    message = BytesParser(policy=policy.default).parsebytes(stored.raw)
    assert isinstance(message, EmailMessage)
    mail = Mail(id=stored.id, received_at=datetime.fromtimestamp(stored.received_at, UTC),
                envelope_from=stored.mail_from, envelope_to=stored.rcpt_to,
                subject=str(message.get("Subject", "")), sender=str(message.get("From", "")),
                to=str(message.get("To", "")), date=str(message.get("Date", "")),
                message_id=str(message.get("Message-ID", "")))
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    mail.text = text.get_content() if text is not None else ""
    mail.html = html.get_content() if html is not None else ""
    for n, part in enumerate(message.iter_attachments()):
        payload = part.get_payload(decode=True) or b""
        name = part.get_filename() or f"attachment-{n + 1}"
        mail.attachments.append(Part(name, part.get_content_type(), payload))
    return mail


async def _mail(request: web.Request) -> Mail:
    stored = await Mailbox(request.app[REDIS], request.app[KEYS]).get(request.match_info["id"])
    if stored is None:
        raise NotFound("no such message in the development mailbox")
    return await asyncio.to_thread(parse, stored)


@routes.get("/dev/mailbox")
async def mailbox(request: web.Request) -> web.Response:
    stored = await Mailbox(request.app[REDIS], request.app[KEYS]).recent(100)
    mails = await asyncio.to_thread(lambda: [parse(s) for s in stored])
    return render(request, "dev/mailbox.html", {"mails": mails})


@routes.get("/dev/mailbox/{id}")
async def one_mail(request: web.Request) -> web.Response:
    return render(request, "dev/mail.html", {"mail": await _mail(request)})


@routes.get("/dev/mailbox/{id}/html")
async def mail_html(request: web.Request) -> web.Response:
    mail = await _mail(request)
    return web.Response(text=mail.html, content_type="text/html",
                        headers={"Content-Security-Policy": SANDBOX_CSP})


@routes.get("/dev/mailbox/{id}/attachments/{n:\\d+}")
async def attachment(request: web.Request) -> web.Response:
    mail = await _mail(request)
    n = int(request.match_info["n"])
    if not 0 <= n < len(mail.attachments):
        raise NotFound("no such attachment")
    part = mail.attachments[n]
    name = _SAFE_NAME.sub("_", part.filename)[:100] or "attachment"
    return web.Response(body=part.content, content_type=part.mime_type, headers={
        "Content-Disposition": f'attachment; filename="{name}"'})


def install(app: web.Application) -> None:
    app.router.add_routes(routes)
