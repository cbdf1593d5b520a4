"""What a buyer sees of each package while choosing, as plain functions of the event and `now`:
the sale state in words, the order bounds of the − / + stepper, the event's status badge.
No I/O: the event page, its live stream and the events index all call these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from engine import catalog_types as t


def few_left(available: int, capacity: int) -> bool:
    """"Few left": at most 10 tickets, or a tenth of the capacity when that is more."""
    return 0 < available <= max(10, capacity // 10)


def opens_in(opens_at: datetime, now: datetime) -> str:
    """`Opens in 2 h 14 min`, `Opens in 5 min`, `Opens in 3 days`, from the server's clock."""
    minutes = max(1, -(-int((opens_at - now).total_seconds()) // 60))
    if minutes < 60:
        return f"Opens in {minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"Opens in {hours} h {minutes} min" if minutes else f"Opens in {hours} h"
    return f"Opens in {(hours + 12) // 24} days"


def state_words(pkg: t.Package, now: datetime) -> str:
    """A package's sale state as the page says it."""
    match pkg.sale_state:
        case "upcoming":
            return opens_in(pkg.opens_at, now) if pkg.opens_at else "Opens soon"
        case "sold_out":
            return "Sold out"
        case "closed":
            return "Sale ended"
        case "paused":
            return "Paused"
    if few_left(pkg.available, pkg.capacity):
        return f"{pkg.available:,} left"
    return "On sale"


def order_bounds(pkg: t.Package, event_cap: int) -> tuple[int, int]:
    """(least, most) one order may take of `pkg` now: its min and max per order, its per-buyer
    limit, the event's per-buyer cap and what is left. Nothing can be chosen when most < least
    or the package is not on sale."""
    most = min(pkg.max_per_order, pkg.per_buyer_limit or pkg.max_per_order, event_cap,
               pkg.available)
    if pkg.sale_state != "on_sale":
        most = 0
    return pkg.min_per_order, max(most, 0)


@dataclass(frozen=True)
class Row:
    """One package row of the event page."""

    package: t.Package
    seated: bool
    low: int  # price range (seated packages: row and seat modifiers)
    high: int
    words: str
    least: int
    most: int

    @property
    def can_choose(self) -> bool:
        return self.most >= self.least and self.most > 0


def rows(event: t.EventDetail, now: datetime, price_range) -> list[Row]:
    """The package rows of `event` (`price_range(pkg, sections)` gives a package's price range)."""
    seated = {s.package_id for s in event.sections}
    out = []
    for pkg in event.packages:
        if not pkg.is_active:
            continue
        low, high = price_range(pkg, event.sections)
        least, most = order_bounds(pkg, event.max_tickets_per_buyer)
        out.append(Row(pkg, pkg.id in seated, low, high, state_words(pkg, now), least, most))
    return out


def live_packages(event: t.EventDetail, now: datetime) -> dict[str, dict]:
    """Per package what the live stream sends: available, state, its words and the stepper's
    bound."""
    return {str(p.id): {"available": p.available, "state": p.sale_state,
                        "words": state_words(p, now),
                        "most": order_bounds(p, event.max_tickets_per_buyer)[1]}
            for p in event.packages if p.is_active}


BADGES = ("On sale", "Few left", "Sold out", "Opens soon", "Postponed", "Cancelled")


def event_badge(event: t.EventSummary, live_status: str | None) -> str | None:
    """The index card's badge, one of BADGES (None: nothing to say, e.g. sales paused)."""
    if event.status == "cancelled":
        return "Cancelled"
    if event.status == "postponed":
        return "Postponed"
    if event.status != "published":
        return None
    if event.price_min is None or live_status is None:
        return "Opens soon"
    if live_status != "on_sale":
        return None
    if event.available <= 0:
        return "Sold out"
    if few_left(event.available, event.available + event.tickets_sold):
        return "Few left"
    return "On sale"
