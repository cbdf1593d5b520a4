"""Keeping Redis in step with the catalog: what a catalog change means for the stock on sale."""

from __future__ import annotations

import logging

from engine.catalog import Catalog
from engine.inventory import Inventory

log = logging.getLogger(__name__)


async def sync_event(catalog: Catalog, inventory: Inventory, event_id: int) -> None:
    """Load (or refresh) one event's packages, seats and status into the inventory.

    Drafts are never loaded. Idempotent: live counters and seat states are kept; a capacity
    below what is held + sold raises Conflict and changes nothing."""
    detail = await catalog.event_detail(event_id=event_id, public_only=False)
    if detail is None:
        return
    loaded = await inventory.availability(event_id)
    if detail.status == "draft" and loaded.status is None:
        return
    seat_map = await catalog.seat_map(event_id) if detail.requires_seating else None
    await inventory.load(detail, detail.packages, seat_map)


async def sync_all(catalog: Catalog, inventory: Inventory) -> int:
    """Load every published or postponed event (start-up reconciliation); returns how many."""
    ids = await catalog.pool.fetch(
        "SELECT id FROM events WHERE status IN ('published', 'postponed') ORDER BY id")
    for row in ids:
        await sync_event(catalog, inventory, row["id"])
    return len(ids)
