"""The catalog's rules as pure functions: the event lifecycle, sale windows, dates, time zones,
positions, order limits, slugs and seat numbering. No I/O; `now` is passed in.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import zoneinfo
from datetime import datetime

from engine import catalog_types as t
from engine.errors import Forbidden, Invalid, InvalidTransition

# status -> the statuses it may move to
TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"published", "cancelled"}),
    "published": frozenset({"cancelled", "postponed", "completed"}),
    "postponed": frozenset({"published", "cancelled"}),
    "cancelled": frozenset(),
    "completed": frozenset(),
}


def slugify(text: str) -> str:
    """`"Lake of Stars 2026!"` -> `"lake-of-stars-2026"`; never empty."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:100].strip("-") or "event"


def check_transition(current: str, target: str) -> None:
    """Raise InvalidTransition unless the lifecycle allows `current` -> `target`."""
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing (final state)"
        raise InvalidTransition(
            f"an event that is {current} cannot become {target}; it can become: {allowed}"
        )


def event_sale_status(event_status: str, live_status: str | None) -> str:
    """Whether an event sells right now: `on_sale`, `paused` or `closed`. A published event sells
    when the inventory says so (`live_status`, None when its stock is not loaded); a postponed one
    is paused (so is one whose sales are being restored from the record); drafts, cancelled and
    completed events sell nothing."""
    if event_status == "published":
        if live_status == "restoring":
            return "paused"
        return live_status if live_status in ("on_sale", "paused") else "closed"
    return "paused" if event_status == "postponed" else "closed"


def sale_state(pkg: t.Package, now: datetime, event_sale: str = "on_sale",
               draft: bool = False) -> str:
    """Where a package stands at `now` (pure; availability supplied): the event's own state when
    it is paused or closed (a draft's packages show their windows, as they will be), else its sale
    window and stock."""
    if event_sale in ("paused", "closed") and not draft:
        return event_sale
    if pkg.opens_at is not None and now < pkg.opens_at:
        return "upcoming"
    if (pkg.closes_at is not None and now >= pkg.closes_at) or not pkg.is_active:
        return "closed"
    if pkg.available <= 0:
        return "sold_out"
    return "on_sale"


def check_standing(standing: str, event_status: str | None, target: str | None = None) -> None:
    """May a provider whose verification status is `standing` make a catalog write?

    `event_status` is the event's status before the write (None when creating an event) and
    `target` the status a lifecycle move goes to. The policy:

    - verified: whatever the lifecycle allows;
    - pending: drafts only: create events, edit a draft and its packages, sections and seats,
      cancel a draft; never publish, never change an event that has been published (an admin
      may have sent a provider back to pending);
    - suspended or rejected: nothing. Their live events keep selling exactly as they are, so
      buyers holding or paying are not hurt; an admin can postpone or cancel them (admins act on
      any event and are never checked here).
    """
    if standing == "verified":
        return
    if standing != "pending":  # suspended, rejected (or a status this code does not know)
        word = "rejected" if standing == "rejected" else "suspended"
        raise Forbidden(f"your provider account is {word}: your events can no longer be "
                        "changed; contact us to resolve it", code=f"provider_{word}")
    if target == "published":
        raise Forbidden("your provider account is awaiting verification; drafts are kept and "
                        "can be published once it is verified", code="provider_not_verified")
    if event_status not in (None, "draft"):
        raise Forbidden("your provider account is awaiting verification; until then only draft "
                        "events can be changed", code="provider_not_verified")


def check_dates(starts_at: datetime, ends_at: datetime) -> None:
    for name, value in (("starts_at", starts_at), ("ends_at", ends_at)):
        if value.tzinfo is None:
            raise Invalid(f"{name} needs a time zone offset", fields={name: "time zone missing"})
    if ends_at <= starts_at:
        raise Invalid("ends_at must be after starts_at", fields={"ends_at": "must be after starts_at"})


@functools.cache
def _zones() -> frozenset[str]:
    # "localtime" and friends are files in the zone directory, not IANA zone names
    return frozenset(zoneinfo.available_timezones()) - {"localtime", "posixrules", "Factory"}


def check_timezone(name: str) -> None:
    if name not in _zones():
        raise Invalid(f"{name!r} is not an IANA time zone (e.g. Africa/Blantyre)",
                      fields={"timezone": "unknown time zone"})


def check_position(latitude: float | None, longitude: float | None) -> None:
    if (latitude is None) != (longitude is None):
        missing = "longitude" if longitude is None else "latitude"
        raise Invalid("latitude and longitude go together: give both or neither",
                      fields={missing: "required with the other coordinate"})


def check_window(opens_at: datetime | None, closes_at: datetime | None) -> None:
    for name, value in (("opens_at", opens_at), ("closes_at", closes_at)):
        if value is not None and value.tzinfo is None:
            raise Invalid(f"{name} needs a time zone offset", fields={name: "time zone missing"})
    if opens_at and closes_at and closes_at <= opens_at:
        raise Invalid("closes_at must be after opens_at", fields={"closes_at": "must be after opens_at"})


def check_order_limits(min_per_order: int, max_per_order: int) -> None:
    if max_per_order < min_per_order:
        raise Invalid("max_per_order must be at least min_per_order",
                      fields={"max_per_order": "below min_per_order"})


def _row_label(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    label = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        label = chr(65 + rem) + label
    return label


def generate_seats(data: t.SectionCreate) -> list[tuple[str, str | None, int | None, int]]:
    """(seat_number, row, column, price_modifier) for each seat of a new section (pure)."""
    if data.numbering_type == "custom":
        return [(s.seat_number, s.row, None, s.price_modifier + data.row_price_modifiers.get(s.row or "", 0))
                for s in data.custom_seats]
    seats = []
    for r in range(data.rows):
        row = _row_label(r)
        modifier = data.row_price_modifiers.get(row, 0)
        for c in range(1, data.seats_per_row + 1):
            number = f"{row}{c}" if data.numbering_type == "grid" else str(r * data.seats_per_row + c)
            seats.append((number, row, c, modifier))
    return seats

PUBLIC_STATUSES = ("published", "postponed")
