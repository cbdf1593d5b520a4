"""Redis restored from the record: an event whose Redis state is lost comes back with every sale
Postgres holds (orders fulfillment wrote, succeeded payments with their sale record) before it
sells again, and `kwika audit` compares Redis sales with Postgres orders (real Redis, Postgres).

The AOF restore (an older copy of Redis brought back) is tests/test_restore.py."""

from __future__ import annotations

import asyncio
import logging
import random

import msgspec
import pytest

from engine import inventory as inventory_module
from engine.audit import audit
from engine.inventory import HoldRefused
from engine.onsale import reconcile_once
from engine.orders import SaleRecord
from fulfillment.consumer import Fulfillment
from fulfillment.issuing import Issuer
from storefront.appkeys import CATALOG, DB, INVENTORY
from tests.test_fulfillment import _sell

EV = "/api/provider/events"


async def _event(client, factory, seats: int, capacity: int):
    provider = await factory.user("provider")
    event = await factory.event(provider, requires_seating=True, max_tickets_per_buyer=1000)
    ga = await factory.package(provider, event["id"], capacity=capacity, price=5_000,
                               max_per_order=100)
    seated = await factory.package(provider, event["id"], price=9_000)
    section = await factory.section(provider, event["id"], seated["id"], rows=1, seats_per_row=seats)
    assert (await client.post(f"{EV}/{event['id']}/publish", headers=provider.h)).status == 200
    return event["id"], ga["id"], [s["id"] for s in section["seats"]]


async def _paid(db, event_id: int, record: SaleRecord) -> None:
    """The payment row settle writes for it: succeeded, with the sale record."""
    await db.execute(
        "INSERT INTO payments (reference, gateway, order_number, event_id, hold_id, buyer, amount, "
        "currency, state, sale, succeeded_at) VALUES ($1, 'sandbox', $2, $3, $4, $5, $6, 'MWK', "
        "'succeeded', $7, now())", record.payment, record.order_number, event_id, record.hold_id,
        record.buyer, record.total, msgspec.json.encode(record).decode())


def _desk(app) -> Fulfillment:
    inventory = app[INVENTORY]
    return Fulfillment(inventory, app[DB], after_write=Issuer(app[DB], inventory.client, inventory.keys))


async def _book(client, factory, db, seats=6, capacity=20):
    """An event with three sales: one only fulfillment wrote (its order, no payment row), one
    only paid (its payment's sale record, not written yet), one both."""
    app = client.server.app
    inventory = app[INVENTORY]
    event_id, ga, seat_ids = await _event(client, factory, seats, capacity)
    desk = _desk(app)
    await _sell(inventory, event_id, "u:1", {ga: 2}, seat_ids[:1], number="ORD-1-WRITTEN")
    both = await _sell(inventory, event_id, "u:2", {ga: 1}, seat_ids[1:2], number="ORD-1-BOTH")
    await _paid(db, event_id, both)
    assert await desk.round() == 2
    paid = await _sell(inventory, event_id, "u:3", {ga: 3}, seat_ids[2:4], number="ORD-1-PAID")
    await _paid(db, event_id, paid)
    sold_seats = set(seat_ids[:4])
    assert await audit(inventory, event_id, db) == []
    return event_id, ga, seat_ids, sold_seats, desk


async def _forget(rds, inventory, event_id: int) -> None:
    """Redis loses every key of the event (its stream and consumer group included)."""
    keys = [k async for k in rds.scan_iter(match=f"{inventory.keys.prefix}:{{ev:{event_id}}}:*")]
    await rds.delete(*keys)


async def test_an_event_flushed_from_redis_comes_back_with_every_sale(client, factory, db, rds, caplog):
    app = client.server.app
    inventory = app[INVENTORY]
    event_id, ga, seat_ids, sold_seats, desk = await _book(client, factory, db)
    await reconcile_once(app[CATALOG], inventory)  # this Redis's run id is now the reconciled one
    await _forget(rds, inventory, event_id)
    problems = await audit(inventory, event_id, db)
    assert any("no stock" in p for p in problems)

    caplog.set_level(logging.WARNING, logger="engine.onsale")
    assert await reconcile_once(app[CATALOG], inventory) == 1  # what the worker does every 5 s
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # nothing refused
    live = await inventory.availability(event_id, with_seats=True)
    assert live.status == "on_sale"
    assert {s for s, state in live.seats.items() if state == "sold"} == sold_seats
    stock = live.packages[ga]
    assert (stock.capacity, stock.sold, stock.held, stock.available) == (20, 6, 0, 14)
    assert await audit(inventory, event_id, db) == []
    with_seats = [s for s in seat_ids if s not in sold_seats]
    for n, seat in enumerate(sorted(sold_seats)):
        with pytest.raises(HoldRefused) as refused:
            await inventory.hold(event_id, f"u:{100 + n}", seat_ids=[seat])
        assert refused.value.reason == "seat_unavailable"
    await inventory.hold(event_id, "u:200", seat_ids=with_seats[:1])  # the rest sells again

    # the paid sale that was never written reaches Postgres through the re-made stream entry
    assert await desk.round() >= 1
    assert await db.fetchval("SELECT count(*) FROM orders WHERE event_id = $1", event_id) == 3
    assert await db.fetchval("SELECT count(*) FROM tickets WHERE event_id = $1", event_id) == 10
    assert await audit(inventory, event_id, db, grace_seconds=0) == []


async def test_no_hold_gets_what_the_record_sold_while_recovery_runs(client, factory, db, rds,
                                                                    monkeypatch):
    """Many buyers hammer the event's holds from before the recovery to after it: no hold ever
    holds a seat or a ticket the record says is sold, and the books balance afterwards."""
    monkeypatch.setattr(inventory_module, "SEATS_PER_LOAD", 8)  # a load of many calls
    app = client.server.app
    inventory = app[INVENTORY]
    event_id, ga, seat_ids, sold_seats, _ = await _book(client, factory, db, seats=60,
                                                              capacity=30)
    await reconcile_once(app[CATALOG], inventory)
    await _forget(rds, inventory, event_id)

    done = asyncio.Event()
    got, refusals = [], []
    rng = random.Random(8)

    async def buyer(n: int) -> None:
        attempt = 0
        while not done.is_set() or attempt < 3:
            attempt += 1
            try:
                hold = await inventory.hold(event_id, f"u:{1000 + n * 1000 + attempt}",
                                            {ga: rng.randint(1, 3)} if rng.random() < 0.4 else {},
                                            rng.sample(seat_ids, 2))
                got.append(hold)
            except HoldRefused as refused:
                refusals.append(refused.reason)

    buyers = [asyncio.create_task(buyer(n)) for n in range(40)]  # they run at our first await
    assert await reconcile_once(app[CATALOG], inventory) == 1
    done.set()
    await asyncio.gather(*buyers)

    assert {"not_loaded", "not_on_sale"} & set(refusals)  # the buyers did overlap the recovery
    for hold in got:
        assert not {s.seat_id for s in hold.seats} & sold_seats, f"{hold.id} holds a sold seat"
    live = await inventory.availability(event_id, with_seats=True)
    assert {s for s, state in live.seats.items() if state == "sold"} == sold_seats
    stock = live.packages[ga]
    assert stock.sold == 6 and stock.held + stock.available == 24
    assert stock.held == sum(i.quantity for h in got for i in h.items)
    assert await audit(inventory, event_id, db) == []


async def test_an_older_copy_with_a_live_hold_on_a_sold_seat_gives_the_seat_back(client, factory, db,
                                                                              rds):
    """Redis came back from a copy older than a sale: a hold on the sold seat and on tickets the
    sale took is live again there. Restart detected, the event restores first: the record's
    sale comes back, the old hold gives way, and nothing sold is on sale at any point after."""
    app = client.server.app
    inventory = app[INVENTORY]
    event_id, ga, seat_ids, _sold, _ = await _book(client, factory, db, capacity=8)
    await reconcile_once(app[CATALOG], inventory)
    await inventory.hold(event_id, "u:50", {ga: 2}, seat_ids[4:5])  # the old copy's hold
    copy = {k: await rds.dump(k) for k in inventory.event_keys(event_id) if await rds.exists(k)}
    release = (await inventory.find_hold(event_id, buyer="u:50"))[0]
    await inventory.release(event_id, release.id, "u:50")
    late = await _sell(inventory, event_id, "u:51", {ga: 2}, seat_ids[4:5], number="ORD-1-LATE")
    await _paid(db, event_id, late)
    for key, value in copy.items():  # the older copy comes back (a restart: another run id)
        await rds.restore(key, 0, value, replace=True)
    await rds.set(inventory.keys.reconciled_epoch(), "the run before")
    assert (await inventory.availability(event_id, seat_ids=seat_ids[4:5])).seats[seat_ids[4]] == "held"

    assert await reconcile_once(app[CATALOG], inventory) >= 1
    live = await inventory.availability(event_id, with_seats=True)
    assert live.status == "on_sale" and live.seats[seat_ids[4]] == "sold"
    assert (await inventory.find_hold(event_id, buyer="u:50"))[0] is None  # gave way
    assert live.packages[ga].sold == 8 and live.packages[ga].available == 0
    assert await audit(inventory, event_id, db) == []


async def test_audit_finds_an_order_of_postgres_missing_in_redis(client, factory, db, rds):
    app = client.server.app
    inventory = app[INVENTORY]
    event_id, _ga, seat_ids, _sold, _ = await _book(client, factory, db)
    sales = inventory.keys.event(event_id, "sales")
    raw = await rds.hget(sales, "ORD-1-WRITTEN")
    await rds.hset(sales, "ORD-1-WRITTEN", raw.replace(b'"state":"sold"', b'"state":"refunded"'))
    problems = await audit(inventory, event_id, db)
    assert any("Postgres has confirmed are not sold in Redis" in p and "ORD-1-WRITTEN" in p
               for p in problems)
    await rds.hset(sales, "ORD-1-WRITTEN", raw)
    assert await audit(inventory, event_id, db) == []
    await rds.hset(inventory.keys.event(event_id, "seats"), str(seat_ids[1]), "s:ORD-1-WRITTEN")
    problems = await audit(inventory, event_id, db)
    assert any("valid ticket in Postgres are not sold to its order" in p for p in problems)


async def test_audit_finds_a_sale_in_redis_missing_in_postgres_after_the_grace_period(client, factory,
                                                                                    db):
    app = client.server.app
    inventory = app[INVENTORY]
    event_id, _ga, _seats, _sold, _ = await _book(client, factory, db)
    assert await audit(inventory, event_id, db) == []  # ORD-1-PAID is young: fulfillment lags
    problems = await audit(inventory, event_id, db, grace_seconds=0)
    assert any("older than the grace period have no order in Postgres" in p and "ORD-1-PAID" in p
               for p in problems)
