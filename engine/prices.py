"""Price ranges. A seat costs its package's price plus its own modifier (a row's modifier is part
of each seat's modifier, set when the section is made), never less than zero; a package with
seats costs what its seats cost, a package without seats its price. An event's range spans its
packages' ranges. `engine/search.py` applies the same rule in SQL, to sort by price."""

from __future__ import annotations

from typing import Any

from engine import catalog_types as t


async def section_prices(db: Any, event_id: int, package_ids: list[int]) -> list[t.SectionPrices]:
    """The price range of each section of `event_id` that belongs to one of `package_ids`."""
    rows = await db.fetch(
        "SELECT c.id, c.name, c.package_id, c.capacity, "
        "       greatest(0, p.price + min(s.price_modifier)) AS price_min, "
        "       greatest(0, p.price + max(s.price_modifier)) AS price_max "
        "FROM sections c JOIN ticket_packages p ON p.id = c.package_id "
        "JOIN seats s ON s.section_id = c.id "
        "WHERE c.event_id = $1 AND c.package_id = ANY($2::bigint[]) "
        "GROUP BY c.id, p.price ORDER BY c.sort_order, c.id", event_id, package_ids)
    return [t.SectionPrices(**dict(r)) for r in rows]


def package_range(package: t.Package, sections: list[t.SectionPrices]) -> tuple[int, int]:
    """What a ticket of `package` costs at least and at most (pure)."""
    own = [s for s in sections if s.package_id == package.id]
    if not own:
        return package.price, package.price
    return min(s.price_min for s in own), max(s.price_max for s in own)


def event_range(packages: list[t.Package],
                sections: list[t.SectionPrices]) -> tuple[int | None, int | None]:
    """The cheapest and dearest ticket over `packages` (None, None without packages; pure)."""
    ranges = [package_range(p, sections) for p in packages]
    return (min((lo for lo, _ in ranges), default=None), max((hi for _, hi in ranges), default=None))
