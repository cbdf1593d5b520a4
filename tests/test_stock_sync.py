"""The catalog and the stock in Redis stay in step: every change is loaded inside the catalog's
transaction under the event's row lock, and nothing a refund or a data loss did is undone."""

from __future__ import annotations

import asyncio
import logging

import pytest

from engine.catalog import Catalog
from engine.inventory import HoldRefused
from engine.lua import ScriptRunner, load_script
from engine.onsale import connect, sync_all
from storefront.appkeys import CATALOG, INVENTORY

EV = "/api/provider/events"


async def _seated_on_sale(client, factory, provider, seats=4):
    event = await factory.event(provider, requires_seating=True)
    pkg = await factory.package(provider, event["id"], price=1000, capacity=100)
    section = await factory.section(provider, event["id"], pkg["id"], rows=1, seats_per_row=seats)
    assert (await client.post(f"{EV}/{event['id']}/publish", headers=provider.h)).status == 200
    return event, pkg, [s["id"] for s in section["seats"]]


async def test_editing_a_seated_package_keeps_it_seated_and_reprices_seats(client, factory):
    provider = await factory.user("provider")
    event, pkg, seats = await _seated_on_sale(client, factory, provider)
    resp = await client.patch(f"{EV}/{event['id']}/packages/{pkg['id']}", headers=provider.h,
                              json={"price": 2500, "capacity": 500})
    assert resp.status == 200
    inventory = client.server.app[INVENTORY]
    stock = (await inventory.availability(event["id"])).packages[pkg["id"]]
    assert (stock.capacity, stock.available) == (4, 4)  # the seats, not the declared capacity
    with pytest.raises(HoldRefused) as refused:
        await inventory.hold(event["id"], "b", {pkg["id"]: 1})
    assert refused.value.reason == "seat_required"
    hold = await inventory.hold(event["id"], "b", seat_ids=[seats[0]])
    assert hold.total == 2500


async def test_a_refund_without_restock_survives_reloads(client, factory):
    provider = await factory.user("provider")
    event = await factory.published_event(provider)
    pkg = (await (await client.get(f"/api/events/{event['slug']}")).json())["packages"][0]
    inventory = client.server.app[INVENTORY]
    hold = await inventory.hold(event["id"], "b", {pkg["id"]: 5})
    await inventory.confirm(event["id"], hold, "ORD-withdrawn")
    await inventory.unsell(event["id"], "ORD-withdrawn", restock=False)
    # any later catalog change reloads the event: the withdrawn five stay withdrawn
    resp = await client.patch(f"{EV}/{event['id']}/packages/{pkg['id']}", headers=provider.h,
                              json={"price": 600_000})
    assert resp.status == 200
    stock = (await inventory.availability(event["id"])).packages[pkg["id"]]
    assert (stock.capacity, stock.available, stock.sold) == (pkg["capacity"] - 5, pkg["capacity"] - 5, 0)
    resp = await client.patch(f"{EV}/{event['id']}/packages/{pkg['id']}", headers=provider.h,
                              json={"capacity": pkg["capacity"] + 10})
    stock = (await inventory.availability(event["id"])).packages[pkg["id"]]
    assert stock.capacity == pkg["capacity"] + 5


async def test_a_change_whose_narrowing_fails_changes_nothing(client, factory, db):
    """Redis refusing (or away) before the commit rolls the change back, so a retried cancel
    still finds a published event and closes its sale."""
    provider = await factory.user("provider")
    event = await factory.published_event(provider)
    stock = client.server.app[CATALOG].stock
    working = stock.narrow

    async def redis_down(conn, event_id, version):
        raise ConnectionError("Redis is away")

    stock.narrow = redis_down
    resp = await client.post(f"{EV}/{event['id']}/cancel", headers=provider.h)
    assert resp.status == 500
    assert await db.fetchval("SELECT status FROM events WHERE id = $1", event["id"]) == "published"
    stock.narrow = working
    assert (await client.post(f"{EV}/{event['id']}/cancel", headers=provider.h)).status == 200
    live = await client.server.app[INVENTORY].availability(event["id"])
    assert live.status == "closed"


async def test_capacity_below_held_is_refused_and_rolled_back(client, factory, db):
    provider = await factory.user("provider")
    event = await factory.published_event(provider)
    pkg = (await (await client.get(f"/api/events/{event['slug']}")).json())["packages"][0]
    await client.server.app[INVENTORY].hold(event["id"], "b", {pkg["id"]: 8})
    resp = await client.patch(f"{EV}/{event['id']}/packages/{pkg['id']}", headers=provider.h,
                              json={"capacity": 5})
    assert resp.status == 409 and (await resp.json())["error"] == "capacity_below_committed"
    assert await db.fetchval("SELECT capacity FROM ticket_packages WHERE id = $1", pkg["id"]) == pkg["capacity"]


async def test_concurrent_capacity_changes_end_in_step(client, factory, db):
    """Writers of one event are serialised by its row lock: Redis ends with the last capacity."""
    provider = await factory.user("provider")
    event = await factory.published_event(provider)
    pkg = (await (await client.get(f"/api/events/{event['slug']}")).json())["packages"][0]
    caps = list(range(40, 140, 5))
    await asyncio.gather(*[client.patch(f"{EV}/{event['id']}/packages/{pkg['id']}", headers=provider.h,
                                        json={"capacity": c}) for c in caps])
    in_pg = await db.fetchval("SELECT capacity FROM ticket_packages WHERE id = $1", pkg["id"])
    stock = (await client.server.app[INVENTORY].availability(event["id"])).packages[pkg["id"]]
    assert stock.capacity == in_pg and stock.available == in_pg


async def test_seats_added_to_a_quantity_package(client, factory):
    provider = await factory.user("provider")
    event = await factory.event(provider, requires_seating=True)
    ga = await factory.package(provider, event["id"], capacity=50)
    seated = await factory.package(provider, event["id"], capacity=10)
    await factory.section(provider, event["id"], seated["id"], rows=1, seats_per_row=2)
    await client.post(f"{EV}/{event['id']}/publish", headers=provider.h)
    inventory = client.server.app[INVENTORY]
    await inventory.hold(event["id"], "b", {ga["id"]: 1})
    resp = await client.post(f"{EV}/{event['id']}/sections", headers=provider.h, json={
        "name": "Late", "package_id": ga["id"], "rows": 1, "seats_per_row": 3})
    assert resp.status == 409 and (await resp.json())["error"] == "package_sold_by_quantity"
    fresh = await factory.package(provider, event["id"], capacity=30)
    section = await factory.section(provider, event["id"], fresh["id"], rows=1, seats_per_row=3)
    stock = (await inventory.availability(event["id"])).packages[fresh["id"]]
    assert (stock.capacity, stock.available) == (3, 3)  # its seats, not the 30 by quantity
    with pytest.raises(HoldRefused):
        await inventory.hold(event["id"], "b2", {fresh["id"]: 1})
    await inventory.hold(event["id"], "b2", seat_ids=[section["seats"][0]["id"]])


async def test_currency_is_fixed_once_published(client, factory):
    provider = await factory.user("provider")
    event = await factory.published_event(provider)
    resp = await client.patch(f"{EV}/{event['id']}", headers=provider.h, json={"currency": "USD"})
    assert resp.status == 422 and "currency" in (await resp.json())["fields"]


async def test_lost_redis_state_is_restored_from_the_record_not_refused(client, factory, rds, caplog):
    """The old policy refused such an event (`stock_lost`); now it is restored from the record
    (tests/test_recovery.py has the sales): the catalog change is kept and the event sells."""
    provider = await factory.user("provider")
    event = await factory.published_event(provider)
    inventory = client.server.app[INVENTORY]
    await rds.delete(*inventory.event_keys(event["id"]))  # Redis lost its data
    with caplog.at_level(logging.WARNING):  # the catalog is the record: the change is kept
        resp = await client.post(f"{EV}/{event['id']}/packages", headers=provider.h,
                                 json={"name": "More", "price": 100, "capacity": 5})
    assert resp.status == 201
    assert "restoring it from the record" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    live = await inventory.availability(event["id"])
    assert live.status == "on_sale" and live.packages[(await resp.json())["id"]].available == 5
    catalog = connect(Catalog(client.server.app[CATALOG].pool), inventory)
    assert await sync_all(catalog, inventory) == 1
    assert (await inventory.availability(event["id"])).status == "on_sale"


async def test_confirm_refuses_refunded_orders_and_second_orders(client, factory):
    provider = await factory.user("provider")
    event = await factory.published_event(provider)
    pkg = (await (await client.get(f"/api/events/{event['slug']}")).json())["packages"][0]
    inventory = client.server.app[INVENTORY]
    hold = await inventory.hold(event["id"], "b", {pkg["id"]: 2})
    await inventory.confirm(event["id"], hold, "ORD-a")
    with pytest.raises(HoldRefused) as refused:
        await inventory.confirm(event["id"], hold, "ORD-b")
    assert refused.value.reason == "hold_already_sold"
    await inventory.unsell(event["id"], "ORD-a")
    with pytest.raises(HoldRefused) as refused:
        await inventory.confirm(event["id"], hold, "ORD-a")
    assert refused.value.reason == "refunded"
    assert (await inventory.availability(event["id"])).packages[pkg["id"]].sold == 0


async def test_one_bad_argument_fails_only_its_caller(rds):
    runner = ScriptRunner(rds)
    script = load_script("expire")
    keys = tuple(f"kwtest:{{ev:1}}:{n}" for n in range(11))
    results = await asyncio.gather(
        *[runner.run(script, keys, (5,)) for _ in range(20)],
        runner.run(script, keys, (1.5,)), return_exceptions=True)
    assert all(isinstance(r, bytes) for r in results[:20])
    assert isinstance(results[20], TypeError)
    await runner.close()
