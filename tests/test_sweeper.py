"""The sweeper returns the stock of expired holds of quiet events, and /readyz watches it."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer

from engine.sweeper import sweep_once
from storefront.app import create_app
from storefront.appkeys import BACKGROUND, INVENTORY


async def _wait_server_clock_past(client, when) -> None:
    while True:  # the scripts use the server's clock: wait on it, not on ours
        sec, usec = await client.time()
        if sec + usec / 1e6 > when.timestamp() + 0.001:
            return
        await asyncio.sleep(0.05)


async def test_sweep_returns_stock_of_a_quiet_event(client, factory):
    provider = await factory.user("provider")
    event = await factory.published_event(provider)
    pkg_id = (await (await client.get(f"/api/events/{event['slug']}")).json())["packages"][0]["id"]
    inventory = client.server.app[INVENTORY]
    holds = [await inventory.hold(event["id"], f"b{i}", {pkg_id: 2}, ttl_seconds=1) for i in range(3)]
    keep = await inventory.hold(event["id"], "stays", {pkg_id: 1})
    assert (await inventory.availability(event["id"])).packages[pkg_id].held == 7
    await _wait_server_clock_past(inventory.client, max(h.expires_at for h in holds))
    assert await sweep_once(inventory) == 3
    assert await sweep_once(inventory) == 0  # each hold comes back once
    stock = (await inventory.availability(event["id"])).packages[pkg_id]
    assert (stock.held, stock.available) == (1, stock.capacity - 1)
    assert await inventory.get_hold(event["id"], keep.id) is not None


async def test_readyz_reports_a_stopped_sweeper(settings):
    app = create_app(settings, sweeper=True)
    async with TestClient(TestServer(app)) as c:
        assert (await (await c.get("/readyz")).json())["checks"]["sweeper"] == "ok"
        task = app[BACKGROUND]["sweeper"]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        resp = await c.get("/readyz")
        assert resp.status == 503 and (await resp.json())["checks"]["sweeper"] == "error: stopped"


async def test_sweep_drops_rate_limit_states_that_are_past(client, factory):
    """The hold rate limits keep their state as fields of the event's `limits` hash (no key with
    a TTL per buyer; a buyer's own state rides in their live hold and comes back to the hash when
    the hold ends while it still counts); a state whose time has passed is worth nothing, and the
    sweeper drops it, while one still in the future stays (dropping it would refill that bucket
    early)."""
    from engine.inventory import HoldLimits
    provider = await factory.user("provider")
    event = await factory.published_event(provider)
    pkg_id = (await (await client.get(f"/api/events/{event['slug']}")).json())["packages"][0]["id"]
    inventory = client.server.app[INVENTORY]
    limits = HoldLimits(client="203.0.113.9", buyer=(5, 1), ip=(5, 1), new_guest=(5, 1))
    hold = await inventory.hold(event["id"], "g:fresh", {pkg_id: 1}, limits=limits)
    key = inventory.keys.event(event["id"], "limits")
    live = {k.decode() for k in await inventory.client.hkeys(key)}
    assert live == {"ip:203.0.113.9", "new:203.0.113.9"}  # the buyer's own rides in the hold
    await inventory.release(event["id"], hold.id, "g:fresh")  # given back at once: it comes out
    live = {k.decode() for k in await inventory.client.hkeys(key)}
    assert live == {"b:g:fresh", "ip:203.0.113.9", "new:203.0.113.9"}
    sec, _ = await inventory.client.time()
    await inventory.client.hset(key, mapping={"b:u:gone": (sec - 5) * 1000, "ip:10.0.0.1": 1})
    await sweep_once(inventory)
    assert {k.decode() for k in await inventory.client.hkeys(key)} == live
