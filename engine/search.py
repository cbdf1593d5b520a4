"""Discovery: the public search over events (keyword, category, dates, city or radius, sort,
pages). WHERE fragments are constants with numbered parameters; input text only ever travels as
a parameter value.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import asyncpg

from engine import catalog_types as t
from engine.catalog_rules import PUBLIC_STATUSES
from engine.errors import Invalid

# each active package of event `e` with what its tickets cost at least and at most: its seats'
# prices (package price + seat modifier, never below zero) when it has seats, else its price;
# the rule of engine/prices.py
_PACKAGE_RANGES = """
    SELECT tp.id, tp.capacity,
           CASE WHEN m.low IS NULL THEN tp.price ELSE greatest(0, tp.price + m.low) END AS low,
           CASE WHEN m.high IS NULL THEN tp.price ELSE greatest(0, tp.price + m.high) END AS high
    FROM ticket_packages tp
    LEFT JOIN LATERAL (
        SELECT min(s.price_modifier) AS low, max(s.price_modifier) AS high
        FROM sections c JOIN seats s ON s.section_id = c.id
        WHERE c.event_id = e.id AND c.package_id = tp.id) m ON true
    WHERE tp.event_id = e.id AND tp.is_active"""


async def search_events(pool: asyncpg.Pool, query: t.EventQuery, now: datetime | None = None,
                        statuses: tuple[str, ...] = PUBLIC_STATUSES) -> t.EventPage:
    """One page of the events in `statuses` (the public ones unless told) matching `query`,
    ordered as asked."""
    now = now or datetime.now(UTC)
    where, args = _search_filters(query, now, statuses)
    direction = (query.order or ("desc" if query.sort == "popularity" else "asc")).upper()
    order_by = {
        "date": f"e.starts_at {direction}, e.id",
        "popularity": f"e.tickets_sold {direction}, e.starts_at, e.id",
        "price": f"price_min {direction} NULLS LAST, e.starts_at, e.id",
    }[query.sort]
    offset = (query.page - 1) * query.per_page
    rows = await pool.fetch(
        f"""SELECT e.id, e.slug, e.title, e.category, e.venue, e.city, e.starts_at, e.ends_at,
                   e.timezone, e.cover_image_url, e.status, e.currency, e.requires_seating,
                   e.tickets_sold, p.price_min, p.price_max, coalesce(p.capacity, 0) AS capacity,
                   coalesce(p.package_ids, '{{}}'::bigint[]) AS package_ids,
                   count(*) OVER () AS total
            FROM events e
            LEFT JOIN LATERAL (
                SELECT min(pk.low) AS price_min, max(pk.high) AS price_max,
                       sum(pk.capacity)::int AS capacity, array_agg(pk.id ORDER BY pk.id) AS package_ids
                FROM ({_PACKAGE_RANGES}) pk) p ON true
            WHERE {' AND '.join(where)}
            ORDER BY {order_by}
            LIMIT {query.per_page} OFFSET {offset}""",
        *args)
    total = rows[0]["total"] if rows else await pool.fetchval(
        f"SELECT count(*) FROM events e WHERE {' AND '.join(where)}", *args)
    items = [t.EventSummary(
        id=r["id"], slug=r["slug"], title=r["title"], category=r["category"], venue=r["venue"],
        city=r["city"], starts_at=r["starts_at"], ends_at=r["ends_at"], timezone=r["timezone"],
        cover_image_url=r["cover_image_url"], status=r["status"], currency=r["currency"].strip(),
        requires_seating=r["requires_seating"], price_min=r["price_min"], price_max=r["price_max"],
        tickets_sold=r["tickets_sold"], available=max(0, r["capacity"] - r["tickets_sold"]),
        package_ids=list(r["package_ids"]),
    ) for r in rows]
    return t.EventPage(items=items, total=total, page=query.page, per_page=query.per_page,
                       pages=max(1, -(-total // query.per_page)))


async def categories(pool: asyncpg.Pool) -> list[str]:
    """The categories of public events, for the filter."""
    rows = await pool.fetch(
        "SELECT DISTINCT category FROM events WHERE status = ANY($1::text[]) ORDER BY category",
        list(PUBLIC_STATUSES))
    return [r["category"] for r in rows]


def _search_filters(query: t.EventQuery, now: datetime,
                    statuses: tuple[str, ...]) -> tuple[list[str], list[Any]]:
    """WHERE fragments and their parameters. Fragments are constants; values go in `args`."""
    args: list[Any] = [list(statuses)]
    where = ["e.status = ANY($1::text[])"]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    q = (query.q or "").strip()
    if q:
        words = " & ".join(re.sub(r"[^\w]", "", w) + ":*" for w in q.split() if re.sub(r"[^\w]", "", w))
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        if words:
            where.append(
                "(to_tsvector('simple', e.title || ' ' || e.description || ' ' || e.venue || ' ' || "
                f"e.city) @@ to_tsquery('simple', {arg(words)}) OR e.title ILIKE {arg(like)})")
        else:
            where.append(f"e.title ILIKE {arg(like)}")
    if query.category:
        where.append(f"e.category = {arg(query.category)}")
    if query.city:
        where.append(f"lower(e.city) = lower({arg(query.city.strip())})")
    if query.date_from and query.date_to and query.date_to < query.date_from:
        raise Invalid("date_to must not be before date_from", fields={"date_to": "before date_from"})
    if query.date_from or query.date_to:
        if query.date_from:
            where.append(f"e.ends_at >= {arg(query.date_from)}")
        if query.date_to:
            where.append(f"e.starts_at <= {arg(query.date_to)}")
    else:
        where.append(f"e.ends_at >= {arg(now)}")  # upcoming and running events by default
    if (query.lat is None) != (query.lng is None):
        missing = "lng" if query.lng is None else "lat"
        raise Invalid("lat and lng go together: give both or neither",
                      fields={missing: "required with the other coordinate"})
    if query.lat is not None and query.lng is not None:
        # great-circle distance (haversine) in km; no PostGIS needed for a radius filter.
        # least(1, ...) keeps rounding at the antipode inside asin's domain.
        lat, lng, radius = arg(query.lat), arg(query.lng), arg(query.radius_km)
        where.append(
            f"e.latitude IS NOT NULL AND e.longitude IS NOT NULL AND 2 * 6371 * asin(least(1.0, "
            f"sqrt(power(sin(radians(e.latitude - {lat}) / 2), 2)"
            f" + cos(radians({lat})) * cos(radians(e.latitude)) * "
            f"power(sin(radians(e.longitude - {lng}) / 2), 2)))) <= {radius}")
    return where, args
