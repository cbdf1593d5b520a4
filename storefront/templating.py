"""The Jinja2 environment (autoescaped) and the filters pages use to show money and times."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2

from engine.prices import package_range

# ISO 4217 minor-unit exponents that are not 2
_EXPONENT = {"JPY": 0, "KRW": 0, "UGX": 0, "RWF": 0, "XOF": 0, "XAF": 0, "BHD": 3, "KWD": 3}


def exponent(currency: str) -> int:
    """The currency's minor-unit exponent (2 unless ISO 4217 says otherwise)."""
    return _EXPONENT.get(currency.strip().upper(), 2)


def money(minor: int | None, currency: str = "MWK") -> str:
    """Minor units as text: `1500000, "MWK"` -> `"MWK 15,000.00"`, `1500, "JPY"` ->
    `"JPY 1,500"`, `-250, "USD"` -> `"-USD 2.50"` (the sign leads, whatever the exponent)."""
    if minor is None:
        return ""
    currency = currency.strip().upper()
    exp = _EXPONENT.get(currency, 2)
    sign = "-" if minor < 0 else ""
    major, frac = divmod(abs(minor), 10**exp)
    amount = f"{major:,}" if exp == 0 else f"{major:,}.{frac:0{exp}d}"
    return f"{sign}{currency} {amount}"


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
