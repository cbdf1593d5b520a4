"""Letters and their MIME form. A `Letter` names its templates (`<name>.txt` and `<name>.html`
under templates/, autoescaped HTML, a layout shared by all) and the values they show;
`compose` turns it into the bytes SMTP sends: multipart/mixed of multipart/alternative (text,
then HTML) and the attachments. Composing is synchronous: callers run it in a thread.
"""

from __future__ import annotations

import email.policy
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from engine.money import money

TEMPLATES = Path(__file__).with_name("templates")


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mime_type: str  # e.g. "application/pdf"


@dataclass
class Letter:
    to: str
    subject: str
    template: str  # templates/<template>.txt and .html
    context: dict[str, Any] = field(default_factory=dict)
    attachments: list[Attachment] = field(default_factory=list)
    to_name: str = ""


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The templates' environment: HTML autoescaped, text not (it is not markup)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",),
                                            default_for_string=False),
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["money"] = money
    return env


def new_message_id(domain: str) -> str:
    """`<...@domain>`: fixed when a letter is first claimed, so a copy sent again carries it."""
    return make_msgid(domain=domain)


def render(letter: Letter) -> tuple[str, str]:
    """The letter's text and HTML bodies."""
    env = environment()
    context = {"subject": letter.subject, **letter.context}
    return (env.get_template(f"{letter.template}.txt").render(context),
            env.get_template(f"{letter.template}.html").render(context))


def compose(letter: Letter, *, sender: str, sender_name: str, message_id: str,
            now=None) -> bytes:
    """The message as SMTP sends it (CRLF line ends, long lines folded, non-ASCII encoded)."""
    from datetime import UTC, datetime

    text, html = render(letter)
    message = EmailMessage(policy=email.policy.SMTP)
    local, _, domain = sender.partition("@")
    message["From"] = Address(sender_name, local, domain)
    to_local, _, to_domain = letter.to.partition("@")
    message["To"] = Address(letter.to_name, to_local, to_domain)
    message["Subject"] = letter.subject
    message["Date"] = format_datetime(now or datetime.now(UTC))
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text, subtype="plain", cte="quoted-printable")
    message.add_alternative(html, subtype="html", cte="quoted-printable")
    for attachment in letter.attachments:
        maintype, _, subtype = attachment.mime_type.partition("/")
        message.add_attachment(attachment.content, maintype=maintype, subtype=subtype,
                               filename=attachment.filename)
    return message.as_bytes()
