"""The Jinja2 environment (autoescaped) and the filters pages use to show money and times."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2

# ISO 4217 minor-unit exponents that are not 2
_EXPONENT = {"JPY": 0, "KRW": 0, "UGX": 0, "RWF": 0, "XOF": 0, "XAF": 0, "BHD": 3, "KWD": 3}


def money(minor: int | None, currency: str = "MWK") -> str:
    """`1500000, "MWK"` -> `"MWK 15,000.00"`."""
    if minor is None:
        return ""
    exp = _EXPONENT.get(currency, 2)
    if exp == 0:
        return f"{currency} {minor:,}"
    major, frac = divmod(abs(minor), 10**exp)
    return f"{'-' if minor < 0 else ''}{currency} {major:,}.{frac:0{exp}d}"


def local(value: datetime | None, tz: str | None = None, fmt: str = "%a %d %b %Y, %H:%M") -> str:
    """A time shown in the event's own time zone."""
    if value is None:
        return ""
    try:
        zone = ZoneInfo(tz) if tz else None
    except (ZoneInfoNotFoundError, ValueError):
        zone = None
    return (value.astimezone(zone) if zone else value).strftime(fmt)


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
    return env
