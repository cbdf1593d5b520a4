"""The fulfillment worker's loops, for `kwika worker` and for `kwika up` (which runs them in one
of its server processes): orders from the streams to Postgres, then their tickets issued; and the
gate's check-ins from their streams to Postgres."""

from __future__ import annotations

import asyncio

import asyncpg

from engine.inventory import Inventory
from fulfillment.checkins import CheckinWriter
from fulfillment.consumer import Fulfillment
from fulfillment.issuing import Issuer


async def run_fulfillment(inventory: Inventory, pool: asyncpg.Pool, stop: asyncio.Event, *,
                          claim_idle_ms: int = 30_000) -> None:
    """Write confirmed sales and check-ins to Postgres until `stop` is set (entries a dead
    worker left pending are claimed after `claim_idle_ms`)."""
    issuer = Issuer(pool, inventory.client, inventory.keys)
    checkins = CheckinWriter(inventory.client, inventory.keys, pool, claim_idle_ms=claim_idle_ms)
    await asyncio.gather(
        Fulfillment(inventory, pool, claim_idle_ms=claim_idle_ms, after_write=issuer).run(stop),
        checkins.run(stop))
