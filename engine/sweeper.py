"""The sweeper: returns the stock of expired holds of every event on sale, about once a second,
and (given a reconcile step) brings events whose stock missed a catalog change back in step
every few seconds.

Holds also expire lazily whenever an event's hold script runs; the sweeper makes sure stock comes
back to quiet events too. A closed event (cancelled, completed) gives back all its live holds and
then leaves the events on sale. A failing pass is logged and retried; the task itself never ends
until cancelled, and `/readyz` reports it if it does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from engine.inventory import Inventory

log = logging.getLogger(__name__)


async def sweep_once(inventory: Inventory, batch: int = 1000) -> int:
    """One pass over the events on sale; returns the number of holds expired."""
    total = 0
    for event_id in await inventory.events_on_sale():
        try:
            while True:
                expired, due, status = await inventory.expire(event_id, batch, with_status=True)
                total += expired
                if not due:
                    break
            if status in ("closed", None):
                await inventory.client.srem(inventory.keys.events_on_sale(), event_id)
        except Exception:  # one event's trouble must not stop the others being swept
            log.exception("sweeping event %d failed", event_id)
    return total


async def sweep_forever(inventory: Inventory, interval: float = 1.0,
                        reconcile: Callable[[], Awaitable[int]] | None = None,
                        reconcile_every: float = 5.0) -> None:
    next_reconcile = time.monotonic()
    while True:
        try:
            expired = await sweep_once(inventory)
            if expired:
                log.info("sweeper returned %d expired holds", expired)
            if reconcile is not None and time.monotonic() >= next_reconcile:
                next_reconcile = time.monotonic() + reconcile_every
                if reloaded := await reconcile():
                    log.warning("reconciliation reloaded %d event(s) from the catalog", reloaded)
        except Exception:  # Redis or Postgres away for a moment: log, wait, try again
            log.exception("sweeper pass failed")
        await asyncio.sleep(interval)
