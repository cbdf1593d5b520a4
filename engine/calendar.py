"""iCalendar (RFC 5545) text for one event, from plain values: the storefront's "add to calendar"
file and the .ics attached to ticket emails are the same document."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def escape(text: str) -> str:
    """A TEXT value (RFC 5545 §3.3.11): backslash, semicolon, comma and line breaks escaped;
    other control characters, which TEXT may not hold, dropped."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return (text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\n", "\\n"))


def fold(line: str) -> str:
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


def utc_stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def event_ics(*, event_id: int, title: str, starts_at: datetime, ends_at: datetime, url: str,
              description: str = "", venue: str = "", address: str = "", city: str = "",
              latitude: float | None = None, longitude: float | None = None,
              cancelled: bool = False, now: datetime | None = None) -> str:
    """One VEVENT in a VCALENDAR; the UID is the event's, so a second copy updates the first."""
    now = now or datetime.now(UTC)
    location = ", ".join(x for x in (venue, address, city) if x)
    lines = [
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Kwika//Events//EN", "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH", "BEGIN:VEVENT",
        f"UID:event-{event_id}@kwika",
        f"DTSTAMP:{utc_stamp(now)}",
        f"DTSTART:{utc_stamp(starts_at)}",
        f"DTEND:{utc_stamp(ends_at)}",
        f"SUMMARY:{escape(title)}",
        f"DESCRIPTION:{escape(chr(10).join(x for x in (description[:1000].strip(), url) if x))}",
        f"LOCATION:{escape(location)}",
        f"URL:{url}",
        "STATUS:" + ("CANCELLED" if cancelled else "CONFIRMED"),
        "END:VEVENT", "END:VCALENDAR",
    ]
    if latitude is not None and longitude is not None:
        lines.insert(-2, f"GEO:{latitude};{longitude}")
    return "\r\n".join(fold(line) for line in lines) + "\r\n"
