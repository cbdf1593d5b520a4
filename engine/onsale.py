"""Keeping Redis in step with the catalog: what a catalog change means for the stock on sale.

`StockSync` is the catalog's `on_change` hook: it runs inside the catalog's write transaction with
the event row locked, reads the event through that transaction and loads it into the inventory.
If the load refuses (a capacity below what is held + sold), the catalog change rolls back; if the
transaction fails after the load, the next change or the start-up reconciliation loads again
(loading is idempotent and keeps live counters).
"""

from __future__ import annotations

import logging

import asyncpg

from engine.catalog import Catalog
from engine.errors import Conflict
from engine.inventory import Inventory

log = logging.getLogger(__name__)


async def sync_event(catalog: Catalog, inventory: Inventory, event_id: int,
                     conn: asyncpg.Connection) -> None:
    """Load (or refresh) one event's status, packages and seats into the inventory.

    Drafts are never loaded. An event loaded before whose Redis state has vanished is refused
    (`stock_lost`): reloading it would put sold tickets on sale again."""
    detail = await catalog.event_detail(event_id=event_id, public_only=False, conn=conn)
    if detail is None:
        return
    loaded = (await inventory.availability(event_id)).status is not None
    if detail.status == "draft" and not loaded:
        return
    loaded_before = await conn.fetchval("SELECT stock_loaded_at FROM events WHERE id = $1", event_id)
    if loaded_before is not None and not loaded:
        raise Conflict(f"event {event_id} was on sale since {loaded_before:%Y-%m-%d %H:%M} UTC but its "
                       "stock is gone from Redis (data loss?); it is not reloaded, so nothing sold "
                       "is sold again. Restore Redis (AOF) before selling", code="stock_lost")
    seat_map = await catalog.seat_map(event_id, conn=conn) if detail.requires_seating else None
    await inventory.load(detail, detail.packages, seat_map)
    if loaded_before is None:
        await conn.execute("UPDATE events SET stock_loaded_at = now() WHERE id = $1", event_id)


class StockSync:
    """The catalog's `on_change` hook (see the module docstring)."""

    def __init__(self, catalog: Catalog, inventory: Inventory):
        self.catalog = catalog
        self.inventory = inventory

    async def __call__(self, conn: asyncpg.Connection, event_id: int) -> None:
        await sync_event(self.catalog, self.inventory, event_id, conn)


def connect(catalog: Catalog, inventory: Inventory) -> Catalog:
    """Make every stock-relevant catalog change update the inventory in the same transaction."""
    catalog.on_change = StockSync(catalog, inventory)
    return catalog


async def sync_all(catalog: Catalog, inventory: Inventory) -> int:
    """Start-up reconciliation: every event that is, or is recorded in Redis as, on sale is loaded
    under its row lock (a cancelled event still marked on sale is closed). Returns how many were
    loaded; an event that cannot be loaded is logged and skipped, not fatal."""
    rows = await catalog.pool.fetch(
        "SELECT id FROM events WHERE status IN ('published', 'postponed') OR id = ANY($1::bigint[]) "
        "ORDER BY id", await inventory.events_on_sale())
    done = 0
    for row in rows:
        try:
            await catalog.locked(row["id"])
            done += 1
        except Conflict as exc:
            log.error("stock of event %d not loaded: %s", row["id"], exc.message)
    return done
