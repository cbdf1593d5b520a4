"""The sweeper: returns the stock of expired holds of every event on sale, about once a second.

Holds also expire lazily whenever an event's hold script runs; the sweeper makes sure stock comes
back to quiet events too. A failing pass is logged and retried; the task itself never ends until
cancelled, and `/readyz` reports it if it does.
"""

from __future__ import annotations

import asyncio
import logging

from engine.inventory import Inventory

log = logging.getLogger(__name__)


async def sweep_once(inventory: Inventory, batch: int = 1000) -> int:
    """One pass over the events on sale; returns the number of holds expired."""
    total = 0
    for event_id in await inventory.events_on_sale():
        try:
            while True:
                expired, due = await inventory.expire(event_id, batch)
                total += expired
                if not due:
                    break
        except Exception:  # one event's trouble must not stop the others being swept
            log.exception("sweeping event %d failed", event_id)
    return total


async def sweep_forever(inventory: Inventory, interval: float = 1.0) -> None:
    while True:
        try:
            expired = await sweep_once(inventory)
            if expired:
                log.info("sweeper returned %d expired holds", expired)
        except Exception:  # Redis away for a moment: log, wait, try again
            log.exception("sweeper pass failed")
        await asyncio.sleep(interval)
