"""The Jinja2 environment (autoescaped) and the filters pages use to show money and times."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2

from engine.money import exponent, money
from engine.prices import package_range

DATE_TIME = "%a %d %b %Y, %H:%M"


def _zone(tz: str | None) -> ZoneInfo | None:
    try:
        return ZoneInfo(tz) if tz else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def local(value: datetime | None, tz: str | None = None, fmt: str = DATE_TIME) -> str:
    """A time shown in the event's own time zone (as given when the zone is unknown)."""
    if value is None:
        return ""
    zone = _zone(tz)
    return (value.astimezone(zone) if zone else value).strftime(fmt)


def timespan(start: datetime, end: datetime, tz: str | None = None) -> str:
    """`Sat 11 Jan 2027, 16:00 – 23:00` on one day; both dates when the event spans days."""
    zone = _zone(tz)
    if zone:
        start, end = start.astimezone(zone), end.astimezone(zone)
    if start.date() == end.date():
        return f"{start.strftime(DATE_TIME)} – {end.strftime('%H:%M')}"
    return f"{start.strftime(DATE_TIME)} – {end.strftime(DATE_TIME)}"


def price_range(low: int | None, high: int | None, currency: str) -> str:
    """`MWK 250.00` when both ends are equal, `MWK 250.00 – MWK 300.00` otherwise."""
    if low is None or high is None:
        return ""
    return money(low, currency) if low == high else f"{money(low, currency)} – {money(high, currency)}"


def iso(value: datetime | None) -> str:
    """A machine-readable time for `<time datetime="...">`."""
    return value.isoformat() if value is not None else ""


def make_environment(folder: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        autoescape=jinja2.select_autoescape(["html", "xml"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = money
    env.filters["local"] = local
    env.filters["iso"] = iso
    env.globals["timespan"] = timespan
    env.globals["price_range"] = price_range
    env.globals["package_range"] = package_range
    env.globals["currency_exponent"] = exponent
    return env
