"""Keeping Redis in step with the catalog: what a catalog change means for the stock on sale.

Postgres is the record of the catalog; Redis holds the live stock. A change reaches Redis in two
steps (see `Catalog`): inside the catalog's transaction, `narrow` takes off sale whatever the
change takes off (and refuses, rolling the change back, what cannot be done); after the commit,
`settle` loads the committed catalog in full and records its version. So whatever fails (Redis,
the commit, the process between the two) the stock on sale never exceeds what Postgres
committed. `reconcile_once` (the worker, every few seconds, and start-up) reloads every event
whose loaded version differs from the catalog's or whose narrowing is still pending.

Redis losing an event (its keys gone, or Redis restarted from an older copy that forgot sales)
is recovered from the record, never refused and never resold: the event is loaded `restoring`
(the hold and confirm scripts sell nothing in that state), every sale Postgres holds (orders
written by fulfillment, payments recorded as succeeded with their sale) is re-applied, and only
then does it open at its committed status. See `sync_event` and `reconcile_once`.
"""

from __future__ import annotations

import logging

import asyncpg
import msgspec

from engine.catalog import Catalog
from engine.errors import Conflict
from engine.inventory import HoldRefused, Inventory
from engine.orders import Attendee, Billing, SaleRecord
from engine.tickets import gate

log = logging.getLogger(__name__)
LIVE = ("published", "postponed")


async def sync_event(catalog: Catalog, inventory: Inventory, event_id: int,
                     conn: asyncpg.Connection, version: int, *, recover: bool = False) -> None:
    """Load one event's committed status, packages and seats in full (the caller holds its row
    lock). Drafts never loaded are skipped.

    Restored from the record: an event whose Redis state may have lost sales is first made
    `restoring` (nothing is held or sold), loaded, given back every sale the record holds
    (`reapply_sales`), its gate register brought up to the tickets table (`gate.rebuild`: a
    revoked generation or a refund an older copy forgot is not admitted again), and only then opened at its committed status. That is an event loaded
    before whose Redis state is gone, one a restoration left unfinished, and with `recover`
    every event (Redis restarted, perhaps from an older copy: see `reconcile_once`)."""
    detail = await catalog.event_detail(event_id=event_id, public_only=False, conn=conn)
    if detail is None:
        return
    status = await inventory.status(event_id)
    if detail.status == "draft" and status is None:
        return
    loaded_before = await conn.fetchval("SELECT stock_loaded_at FROM events WHERE id = $1", event_id)
    lost = loaded_before is not None and status is None
    restoring = recover or lost or status == "restoring"
    if lost:
        log.warning("event %d was on sale since %s but its stock is gone from Redis: restoring it "
                    "from the record before it sells again", event_id, loaded_before)
    if restoring and status not in (None, "restoring"):
        await inventory.begin_restore(event_id)  # nothing sells from here until `open`
    seat_map = await catalog.seat_map(event_id, conn=conn) if detail.requires_seating else None
    result = await inventory.load(detail, detail.packages, seat_map, version=version,
                                  restoring=restoring)
    if result.conflicts:
        log.error("event %d: seats %s are blocked in the catalog but held or sold in Redis, or "
                  "belong to a package sold by quantity", event_id, result.conflicts[:20])
    await reapply_sales(inventory, event_id, conn)
    if restoring:  # the gate register too may be older than the record: move it up to it
        raised = await gate.rebuild(inventory.client, inventory.keys, event_id, conn)
        if raised:
            log.warning("event %d: %d gate register entr(ies) brought up to the record",
                        event_id, raised)
        await inventory.open(detail)
    if loaded_before is None:
        await conn.execute("UPDATE events SET stock_loaded_at = now() WHERE id = $1", event_id)


async def reapply_sales(inventory: Inventory, event_id: int, conn: asyncpg.Connection) -> int:
    """Sales the record holds that this Redis lacks (lost, or restored from an older copy) are
    made again: every order Postgres has written (status confirmed, its valid tickets) and every
    succeeded payment with its sale record whose order is not refunded or cancelled. Orders come
    first: their tickets are the stronger record (one valid ticket per seat is a constraint).
    Returns how many were re-applied. One that cannot be (its seat went to another sale, which
    only something else going wrong allows) is logged critically and never resold silently:
    `kwika audit` keeps reporting it."""
    written = [r["order_number"] for r in await conn.fetch(
        "SELECT order_number FROM orders WHERE event_id = $1 AND status = 'confirmed' "
        "ORDER BY sold_at, id", event_id)]
    paid = {r["order_number"]: r["sale"] for r in await conn.fetch(
        "SELECT DISTINCT ON (p.order_number) p.order_number, p.sale FROM payments p "
        "WHERE p.event_id = $1 AND p.state = 'succeeded' AND p.sale IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM orders o WHERE o.order_number = p.order_number) "
        "ORDER BY p.order_number, p.succeeded_at", event_id)}
    numbers = written + sorted(set(paid) - set(written))
    done = 0
    for start in range(0, len(numbers), 1000):
        batch = numbers[start:start + 1000]
        known = await inventory.sold_orders(event_id, batch)
        missing = [n for n in batch if n not in known]
        if not missing:
            continue
        records = {n: msgspec.json.decode(paid[n], type=SaleRecord) for n in missing if n in paid}
        records.update(await order_records(conn, [n for n in missing if n not in records]))
        for number in missing:
            record = records.get(number)
            if record is None:
                log.critical("order %s of event %d is in the record but has no valid tickets to "
                             "re-apply", number, event_id)
                continue
            record.restored = True
            try:
                await inventory.confirm(event_id, record.as_hold(event_id), number, restore=True,
                                        extra=msgspec.to_builtins(record))
                done += 1
            except HoldRefused as refused:
                log.critical("order %s of event %d is in the record but could not be re-applied to "
                             "Redis (it stays off sale; kwika audit reports it): %s",
                             number, event_id, refused)
    if done:
        log.warning("event %d: %d sale(s) of the record missing in Redis were re-applied",
                    event_id, done)
    return done


async def order_records(conn: asyncpg.Connection, numbers: list[str]) -> dict[str, SaleRecord]:
    """The sales of written orders as the record keeps them (orders and their valid or used
    tickets), for orders that have no payment's sale record to re-apply from."""
    if not numbers:
        return {}
    rows = await conn.fetch(
        "SELECT o.order_number, o.hold_id, o.buyer, o.email, o.buyer_name, o.phone, o.subtotal, "
        "o.fees, o.total, o.currency, o.payment_reference, t.package_id, t.seat_id, t.price, "
        "t.attendee_name, t.attendee_email, t.attendee_phone FROM orders o "
        "JOIN tickets t ON t.order_id = o.id WHERE o.order_number = ANY($1::text[]) "
        "AND o.status = 'confirmed' AND t.status IN ('valid', 'used') ORDER BY o.id, t.id", numbers)
    grouped: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        grouped.setdefault(row["order_number"], []).append(row)
    records = {}
    for number, tickets in grouped.items():
        head = tickets[0]
        lines: dict[tuple[int, int], int] = {}
        for t in tickets:
            if t["seat_id"] is None:
                lines[(t["package_id"], t["price"])] = lines.get((t["package_id"], t["price"]), 0) + 1
        seats = [(t["seat_id"], t["package_id"], t["price"]) for t in tickets if t["seat_id"]]
        people = ([t for t in tickets if t["seat_id"] is None]
                  + [t for t in tickets if t["seat_id"] is not None])  # ga lines first, as sold
        records[number] = SaleRecord(
            order_number=number, hold_id=head["hold_id"], buyer=head["buyer"],
            ga=[(pid, qty, price) for (pid, price), qty in lines.items()], seats=seats,
            attendees=[Attendee(name=t["attendee_name"], email=t["attendee_email"],
                                phone=t["attendee_phone"]) for t in people],
            billing=Billing(name=head["buyer_name"], email=head["email"], phone=head["phone"]),
            subtotal=head["subtotal"], fees=head["fees"], total=head["total"],
            currency=head["currency"].strip(), payment=head["payment_reference"])
    return records


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

    async def reload(self, event_id: int, *, recover: bool = False) -> bool:
        """Load the committed catalog of one event in full, under its row lock (with `recover`,
        restored from the record first: see `sync_event`)."""
        async with self.catalog.pool.acquire() as conn, conn.transaction():
            version = await conn.fetchval(
                "SELECT catalog_version FROM events WHERE id = $1 FOR UPDATE", event_id)
            if version is None:
                return False
            await sync_event(self.catalog, self.inventory, event_id, conn, version, recover=recover)
            return True


def connect(catalog: Catalog, inventory: Inventory) -> Catalog:
    """Make every stock-relevant catalog change reach the inventory (see the module docstring)."""
    catalog.stock = StockSync(catalog, inventory)
    return catalog


_epochs: dict[int, str] = {}  # id(inventory) -> the Redis run id its last reconciliation saw


async def reconcile_once(catalog: Catalog, inventory: Inventory, *, everything: bool = False) -> int:
    """Reload every event that is (or Redis says is) on sale and whose loaded catalog version is
    not the committed one, or whose narrowing load or restoration is pending; with `everything`,
    reload them all (start-up). Returns how many were loaded; an event that cannot be loaded is
    logged and skipped, not fatal.

    Redis restarted (its run id is not the one the record was last re-applied to, kept in Redis
    under `Keys.reconciled_epoch`: a restore from an older copy brings back an older one, a
    flush none) means it may have lost sales: every event is restored from the record (see
    `sync_event`: nothing sells until its sales are back), and only then is the run id kept."""
    epoch = await inventory.server_epoch()
    marker = inventory.keys.reconciled_epoch()
    recover = await inventory.client.get(marker) != epoch.encode()
    if recover or _epochs.get(id(inventory)) != epoch:  # Redis restarted, or first seen here
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
            done += await sync.reload(row["id"], recover=recover)
        except Conflict as exc:  # a restoring event stays restoring (pending): retried each round
            log.error("stock of event %d not loaded: %s", row["id"], exc.message)
    if recover:
        await inventory.client.set(marker, epoch)
    return done


async def sync_all(catalog: Catalog, inventory: Inventory) -> int:
    """Start-up reconciliation: every event on sale is loaded from the committed catalog."""
    return await reconcile_once(catalog, inventory, everything=True)
