"""iCalendar (RFC 5545) for "add to calendar", and share links for an event page."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote, urlencode

from engine import catalog_types as t
from engine.calendar import event_ics
from engine.calendar import utc_stamp as _utc


def ics(event: t.Event, url: str, now: datetime | None = None) -> str:
    return event_ics(event_id=event.id, title=event.title, starts_at=event.starts_at,
                     ends_at=event.ends_at, url=url, description=event.description,
                     venue=event.venue, address=event.address, city=event.city,
                     latitude=event.latitude, longitude=event.longitude,
                     cancelled=event.status == "cancelled", now=now)


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
