"""Keeping Redis in step with the catalog: what a catalog change means for the stock on sale.

Postgres is the record of the catalog; Redis holds the live stock. A change reaches Redis in two
steps (see `Catalog`): inside the catalog's transaction, `narrow` takes off sale whatever the
change takes off (and refuses, rolling the change back, what cannot be done); after the commit,
`settle` loads the committed catalog in full and records its version. So whatever fails (Redis,
the commit, the process between the two) the stock on sale never exceeds what Postgres
committed. `reconcile_once` (the worker, every few seconds, and start-up) reloads every event
whose loaded version differs from the catalog's or whose narrowing is still pending.
"""

from __future__ import annotations

import logging

import asyncpg
import msgspec

from engine.catalog import Catalog
from engine.errors import Conflict
from engine.inventory import HoldRefused, Inventory
from engine.orders import SaleRecord

log = logging.getLogger(__name__)
LIVE = ("published", "postponed")


async def sync_event(catalog: Catalog, inventory: Inventory, event_id: int,
                     conn: asyncpg.Connection, version: int) -> None:
    """Load one event's committed status, packages and seats in full (the caller holds its row
    lock). Drafts never loaded are skipped. An event loaded before whose Redis state has vanished
    is refused (`stock_lost`): reloading it would put sold tickets on sale again."""
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
    result = await inventory.load(detail, detail.packages, seat_map, version=version)
    if result.conflicts:
        log.error("event %d: seats %s are blocked in the catalog but held or sold in Redis, or "
                  "belong to a package sold by quantity", event_id, result.conflicts[:20])
    await reapply_sales(inventory, event_id, conn)
    if loaded_before is None:
        await conn.execute("UPDATE events SET stock_loaded_at = now() WHERE id = $1", event_id)


async def reapply_sales(inventory: Inventory, event_id: int, conn: asyncpg.Connection) -> int:
    """Sales the record holds that this Redis lacks (restored from an older copy) are made again
    before the event sells on: every succeeded payment of the event is a sale. Returns how many
    were re-applied; one that cannot be (its tickets went to another sale meanwhile) is logged
    for an operator, and `kwika audit` keeps reporting it."""
    rows = {r["order_number"]: r for r in await conn.fetch(
        "SELECT order_number, sale FROM payments "
        "WHERE event_id = $1 AND state = 'succeeded' AND sale IS NOT NULL", event_id)}
    paid = sorted(rows)
    done = 0
    for start in range(0, len(paid), 1000):
        batch = paid[start:start + 1000]
        known = await inventory.sold_orders(event_id, batch)
        for number in batch:
            if number in known:
                continue
            record = msgspec.json.decode(rows[number]["sale"], type=SaleRecord)
            record.restored = True
            try:
                await inventory.confirm(event_id, record.as_hold(event_id), number, restore=True,
                                        extra=msgspec.to_builtins(record))
                done += 1
            except HoldRefused as refused:
                log.critical("order %s of event %d is paid but could not be re-applied to Redis: "
                             "%s", number, event_id, refused)
    if done:
        log.warning("event %d: %d paid order(s) missing in Redis were re-applied", event_id, done)
    return done


class StockSync:
    """The catalog's stock hook (see the module docstring)."""

    def __init__(self, catalog: Catalog, inventory: Inventory):
        self.catalog = catalog
        self.inventory = inventory

    async def narrow(self, conn: asyncpg.Connection, event_id: int, version: int) -> None:
        detail = await self.catalog.event_detail(event_id=event_id, public_only=False, conn=conn)
        if detail is None or detail.status == "draft":
            return
        seat_map = (await self.catalog.seat_map(event_id, conn=conn)
                    if detail.requires_seating else None)
        await self.inventory.load(detail, detail.packages, seat_map, mode="narrow", version=version)

    async def settle(self, event_id: int) -> None:
        try:
            await self.reload(event_id)
        except Exception:  # committed already: reconciliation finds the event by its version
            log.exception("loading event %d after its catalog change failed; "
                          "reconciliation will retry", event_id)

    async def reload(self, event_id: int) -> bool:
        """Load the committed catalog of one event in full, under its row lock."""
        async with self.catalog.pool.acquire() as conn, conn.transaction():
            version = await conn.fetchval(
                "SELECT catalog_version FROM events WHERE id = $1 FOR UPDATE", event_id)
            if version is None:
                return False
            await sync_event(self.catalog, self.inventory, event_id, conn, version)
            return True


def connect(catalog: Catalog, inventory: Inventory) -> Catalog:
    """Make every stock-relevant catalog change reach the inventory (see the module docstring)."""
    catalog.stock = StockSync(catalog, inventory)
    return catalog


_epochs: dict[int, str] = {}  # id(inventory) -> the Redis run id its last reconciliation saw


async def reconcile_once(catalog: Catalog, inventory: Inventory, *, everything: bool = False) -> int:
    """Reload every event that is (or Redis says is) on sale and whose loaded catalog version is
    not the committed one, or whose narrowing load is pending; with `everything`, reload them all
    (start-up), and so after Redis restarted (a restore from a copy may have lost sales, which
    the full load re-applies from the record). Returns how many were loaded; an event that
    cannot be loaded is logged and skipped, not fatal."""
    epoch = await inventory.server_epoch()
    if _epochs.get(id(inventory)) != epoch:  # first seen by this process, or Redis restarted
        everything = True
        _epochs[id(inventory)] = epoch
    sync = catalog.stock if isinstance(catalog.stock, StockSync) else StockSync(catalog, inventory)
    rows = await catalog.pool.fetch(
        "SELECT id, catalog_version FROM events WHERE status = ANY($1::text[]) "
        "OR id = ANY($2::bigint[]) ORDER BY id", list(LIVE), await inventory.events_on_sale())
    loaded = await inventory.loaded_versions([r["id"] for r in rows])
    done = 0
    for row in rows:
        version, pending = loaded[row["id"]]
        if not everything and version == row["catalog_version"] and not pending:
            continue
        try:
            done += await sync.reload(row["id"])
        except Conflict as exc:
            log.error("stock of event %d not loaded: %s", row["id"], exc.message)
    return done


async def sync_all(catalog: Catalog, inventory: Inventory) -> int:
    """Start-up reconciliation: every event on sale is loaded from the committed catalog."""
    return await reconcile_once(catalog, inventory, everything=True)
