"""iCalendar (RFC 5545) for "add to calendar", and share links for an event page."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from engine import catalog_types as t

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _escape(text: str) -> str:
    """A TEXT value (RFC 5545 §3.3.11): backslash, semicolon, comma and line breaks escaped;
    other control characters, which TEXT may not hold, dropped."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return (text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\n", "\\n"))


def _fold(line: str) -> str:
    """Lines longer than 75 octets are folded with CRLF + space (RFC 5545 §3.1)."""
    out, current = [], b""
    for ch in line:
        enc = ch.encode()
        if len(current) + len(enc) > 75:
            out.append(current.decode())
            current = b" "
        current += enc
    out.append(current.decode())
    return "\r\n".join(out)


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def ics(event: t.Event, url: str, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    location = ", ".join(x for x in (event.venue, event.address, event.city) if x)
    lines = [
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Kwika//Events//EN", "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH", "BEGIN:VEVENT",
        f"UID:event-{event.id}@kwika",
        f"DTSTAMP:{_utc(now)}",
        f"DTSTART:{_utc(event.starts_at)}",
        f"DTEND:{_utc(event.ends_at)}",
        f"SUMMARY:{_escape(event.title)}",
        f"DESCRIPTION:{_escape(chr(10).join(x for x in (event.description[:1000].strip(), url) if x))}",
        f"LOCATION:{_escape(location)}",
        f"URL:{url}",
        "STATUS:" + ("CANCELLED" if event.status == "cancelled" else "CONFIRMED"),
        "END:VEVENT", "END:VCALENDAR",
    ]
    if event.latitude is not None and event.longitude is not None:
        lines.insert(-2, f"GEO:{event.latitude};{event.longitude}")
    return "\r\n".join(_fold(line) for line in lines) + "\r\n"


def share_links(title: str, url: str) -> dict[str, str]:
    text = f"{title} {url}"
    return {
        "WhatsApp": "https://wa.me/?" + urlencode({"text": text}),
        "Facebook": "https://www.facebook.com/sharer/sharer.php?" + urlencode({"u": url}),
        "X": "https://twitter.com/intent/tweet?" + urlencode({"text": title, "url": url}),
        "Email": f"mailto:?subject={quote(title, safe='')}&body={quote(url, safe='')}",
    }


def google_calendar_link(event: t.Event, url: str) -> str:
    return "https://calendar.google.com/calendar/render?" + urlencode({
        "action": "TEMPLATE", "text": event.title,
        "dates": f"{_utc(event.starts_at)}/{_utc(event.ends_at)}",
        "details": url, "location": ", ".join(x for x in (event.venue, event.city) if x)})
