"""Postgres and Redis converge after any failure: a commit that fails after Redis was touched, a
process killed between the commit and the full load, a Redis restored from an older copy. The
stock on sale never exceeds what Postgres committed, and reconciliation brings Redis to it."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from engine.audit import audit
from engine.inventory import HoldRefused
from engine.onsale import reconcile_once
from storefront.appkeys import CATALOG, INVENTORY

EV = "/api/provider/events"


@contextlib.asynccontextmanager
async def failing_commits(db, table: str):
    """Every transaction that updates `table` fails at COMMIT (a deferred constraint trigger):
    the change is written, Redis is narrowed, then Postgres refuses to commit."""
    await db.execute("CREATE OR REPLACE FUNCTION kwika_test_fail() RETURNS trigger LANGUAGE plpgsql "
                     "AS $$ BEGIN RAISE EXCEPTION 'injected commit failure'; END $$")
    await db.execute(f"CREATE CONSTRAINT TRIGGER kwika_test_fail AFTER INSERT OR UPDATE ON {table} "
                     "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kwika_test_fail()")
    try:
        yield
    finally:
        await db.execute(f"DROP TRIGGER kwika_test_fail ON {table}")


async def _on_sale(client, factory, capacity):
    provider = await factory.user("provider")
    event = await factory.event(provider, max_tickets_per_buyer=1000)
    pkg = await factory.package(provider, event["id"], capacity=capacity, max_per_order=1000)
    assert (await client.post(f"{EV}/{event['id']}/publish", headers=provider.h)).status == 200
    return provider, event, pkg


async def _hold_all(inventory, event_id, package_id, buyers: int) -> int:
    results = await asyncio.gather(*[inventory.hold(event_id, f"u:{i}", {package_id: 1})
                                     for i in range(buyers)], return_exceptions=True)
    assert all(isinstance(r, HoldRefused) for r in results if isinstance(r, Exception))
    return sum(not isinstance(r, Exception) for r in results)


async def test_a_failed_commit_never_puts_more_on_sale(client, factory, db):
    """The review's case: capacity 100 -> 1000 with the commit failing used to leave Redis at
    1000 while Postgres kept 100, and 300 tickets were held against 100."""
    provider, event, pkg = await _on_sale(client, factory, 100)
    app = client.server.app
    async with failing_commits(db, "ticket_packages"):
        resp = await client.patch(f"{EV}/{event['id']}/packages/{pkg['id']}", headers=provider.h,
                                  json={"capacity": 1000})
        assert resp.status == 500
    assert await db.fetchval("SELECT capacity FROM ticket_packages WHERE id = $1", pkg["id"]) == 100
    assert await _hold_all(app[INVENTORY], event["id"], pkg["id"], 300) == 100
    assert (await app[INVENTORY].availability(event["id"])).packages[pkg["id"]].capacity == 100
    await reconcile_once(app[CATALOG], app[INVENTORY])
    assert await audit(app[INVENTORY], event["id"], db) == []


async def test_a_failed_commit_of_a_decrease_is_undone_by_reconciliation(client, factory, db):
    provider, event, pkg = await _on_sale(client, factory, 100)
    app = client.server.app
    async with failing_commits(db, "ticket_packages"):
        resp = await client.patch(f"{EV}/{event['id']}/packages/{pkg['id']}", headers=provider.h,
                                  json={"capacity": 40})
        assert resp.status == 500
    # taken off sale before the commit, as it must be: nothing above what either state allows
    assert (await app[INVENTORY].availability(event["id"])).packages[pkg["id"]].capacity == 40
    problems = await audit(app[INVENTORY], event["id"], db)
    assert any("reconciliation has not caught up" in p for p in problems)
    assert await reconcile_once(app[CATALOG], app[INVENTORY]) == 1
    assert (await app[INVENTORY].availability(event["id"])).packages[pkg["id"]].capacity == 100
    assert await audit(app[INVENTORY], event["id"], db) == []
    assert await reconcile_once(app[CATALOG], app[INVENTORY]) == 0  # in step: nothing to do


async def test_a_process_killed_between_commit_and_load(client, factory, db):
    """Committed, but the full load after the commit never ran (the process died): Redis keeps
    the narrower state until reconciliation loads the committed one."""
    provider, event, pkg = await _on_sale(client, factory, 100)
    app = client.server.app
    stock = app[CATALOG].stock
    settle = stock.settle

    async def killed(event_id):
        return None

    stock.settle = killed
    try:
        resp = await client.patch(f"{EV}/{event['id']}/packages/{pkg['id']}", headers=provider.h,
                                  json={"capacity": 300})
        assert resp.status == 200
        assert (await app[INVENTORY].availability(event["id"])).packages[pkg["id"]].capacity == 100
        resp = await client.post(f"{EV}/{event['id']}/cancel", headers=provider.h)
        assert resp.status == 200
        assert (await app[INVENTORY].availability(event["id"])).status == "paused"  # narrowed: holds kept
    finally:
        stock.settle = settle
    assert await reconcile_once(app[CATALOG], app[INVENTORY]) == 1
    assert await audit(app[INVENTORY], event["id"], db) == []


async def test_a_load_that_fails_after_commit_answers_and_is_retried(client, factory, db):
    provider, event, pkg = await _on_sale(client, factory, 100)
    app = client.server.app
    stock = app[CATALOG].stock
    reload = stock.reload

    async def redis_down(event_id):
        raise ConnectionError("Redis is away")

    stock.reload = redis_down
    try:
        resp = await client.patch(f"{EV}/{event['id']}/packages/{pkg['id']}", headers=provider.h,
                                  json={"capacity": 150})
        assert resp.status == 200  # committed: the provider is told so
    finally:
        stock.reload = reload
    assert (await app[INVENTORY].availability(event["id"])).packages[pkg["id"]].capacity == 100
    assert await reconcile_once(app[CATALOG], app[INVENTORY]) == 1
    assert (await app[INVENTORY].availability(event["id"])).packages[pkg["id"]].capacity == 150


async def test_blocks_committed_while_redis_was_gone_are_reapplied(client, factory, db, rds):
    """Redis lost the event (the next load restores it from the record), the provider blocked
    and unblocked seats meanwhile, then Redis came back from an older copy: reconciliation
    re-applies every block and unblock the catalog holds."""
    provider = await factory.user("provider")
    event = await factory.event(provider, requires_seating=True)
    pkg = await factory.package(provider, event["id"])
    section = await factory.section(provider, event["id"], pkg["id"], rows=1, seats_per_row=4)
    seats = [s["id"] for s in section["seats"]]
    assert (await client.post(f"{EV}/{event['id']}/publish", headers=provider.h)).status == 200
    block = f"{EV}/{event['id']}/seats/block"
    assert (await client.post(block, headers=provider.h, json={"seat_ids": [seats[3]]})).status == 200
    app = client.server.app
    inventory = app[INVENTORY]
    saved = {k: await rds.dump(k) for k in inventory.event_keys(event["id"]) if await rds.exists(k)}
    await rds.delete(*inventory.event_keys(event["id"]))
    resp = await client.post(block, headers=provider.h, json={"seat_ids": [seats[0], seats[1]]})
    assert resp.status == 200
    resp = await client.post(block, headers=provider.h, json={"seat_ids": [seats[3]], "blocked": False})
    assert resp.status == 200
    live = (await inventory.availability(event["id"], with_seats=True))
    assert live.status == "on_sale"  # restored at once by the load after the commit
    assert [live.seats[s] for s in seats] == ["blocked", "blocked", "available", "available"]
    for key, value in saved.items():  # the older copy comes back
        await rds.restore(key, 0, value, replace=True)
    assert any("blocked in the catalog" in p or "catalog version" in p
               for p in await audit(inventory, event["id"], db))
    assert await reconcile_once(app[CATALOG], inventory) == 1
    live = (await inventory.availability(event["id"], with_seats=True)).seats
    assert [live[s] for s in seats] == ["blocked", "blocked", "available", "available"]
    assert await audit(inventory, event["id"], db) == []


async def test_audit_flags_an_event_missing_from_redis(client, factory, db, rds):
    _provider, event, _pkg = await _on_sale(client, factory, 10)
    inventory = client.server.app[INVENTORY]
    assert await audit(inventory, event["id"], db) == []
    await rds.delete(*inventory.event_keys(event["id"]))
    assert await audit(inventory, event["id"]) == []  # Redis alone cannot tell
    problems = await audit(inventory, event["id"], db)
    assert problems and "no stock" in problems[0]


async def test_audit_flags_capacity_and_seat_counter_disagreements(client, factory, db, rds):
    provider = await factory.user("provider")
    event = await factory.event(provider, requires_seating=True)
    ga = await factory.package(provider, event["id"], capacity=10)
    seated = await factory.package(provider, event["id"])
    section = await factory.section(provider, event["id"], seated["id"], rows=1, seats_per_row=3)
    assert (await client.post(f"{EV}/{event['id']}/publish", headers=provider.h)).status == 200
    inventory = client.server.app[INVENTORY]
    stock = inventory.keys.event(event["id"], "stock")
    await rds.hincrby(stock, f"{ga['id']}:cap", 5)
    await rds.hincrby(stock, f"{ga['id']}:avail", 5)  # balanced in itself, not with the catalog
    seat = section["seats"][0]["id"]
    await rds.hset(inventory.keys.event(event["id"], "seats"), str(seat), "b")
    problems = await audit(inventory, event["id"], db)
    assert any(f"package {ga['id']}: capacity 15 in Redis, 10 by the catalog" in p for p in problems)
    assert any(f"package {seated['id']}: its seats are" in p for p in problems)
    assert any(f"seat {seat} is available in the catalog but blocked" in p for p in problems)


@pytest.mark.parametrize("target", ["cancel", "complete"])
async def test_closing_an_event_releases_its_live_holds(client, factory, db, target):
    provider, event, pkg = await _on_sale(client, factory, 100)
    inventory = client.server.app[INVENTORY]
    assert await _hold_all(inventory, event["id"], pkg["id"], 50) == 50
    resp = await client.post(f"{EV}/{event['id']}/{target}", headers=provider.h)
    assert resp.status == 200, await resp.text()
    stock = (await inventory.availability(event["id"])).packages[pkg["id"]]
    assert (stock.held, stock.available) == (0, 100)
    assert event["id"] not in await inventory.events_on_sale()
    assert await audit(inventory, event["id"], db) == []
