"""The worker's rounds: the hold sweeper, about once a second, and periodic jobs beside it (the
catalog reconciliation every few seconds; payments whose webhook never came; refunds due).

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
from dataclasses import dataclass

from engine.inventory import Inventory

log = logging.getLogger(__name__)
SWEEP_INTERVAL = 1.0  # seconds between two rounds of the sweeper (expired holds)


@dataclass
class Job:
    """A periodic job of the worker: `run()` every `every` seconds; what it returns is logged."""

    name: str
    every: float
    run: Callable[[], Awaitable[int]]
    due: float = 0.0


def worker_jobs(catalog, inventory: Inventory, payments=None) -> list[Job]:
    """The periodic jobs every worker runs beside the sweeper."""
    from engine.onsale import reconcile_once

    jobs = [Job("reconciliation reloaded events from the catalog", 5.0,
                lambda: reconcile_once(catalog, inventory)),
            Job("gate register entries levelled with the record", 60.0,
                lambda: level_registers(catalog.pool, inventory))]
    if payments is not None:
        jobs += [Job("payments asked about at their gateway", 15.0, payments.verify_pending),
                 Job("payments refunded", 30.0, payments.refund_due)]
    return jobs


async def level_registers(pool, inventory: Inventory) -> int:
    """The gate register of every event on sale brought level with the tickets table (a transfer
    whose commit failed after Redis was updated; engine/tickets/register.py)."""
    from engine.tickets.register import level_register

    fixed = 0
    for event_id in await inventory.events_on_sale():
        try:
            fixed += await level_register(pool, inventory.client, inventory.keys, event_id)
        except Exception:  # one event's trouble must not stop the others
            log.exception("levelling the gate register of event %d failed", event_id)
    return fixed


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


async def sweep_forever(inventory: Inventory, interval: float = SWEEP_INTERVAL,
                        jobs: list[Job] | None = None) -> None:
    me = asyncio.current_task()
    # a cancellation that a client library swallows (turning it into a connection error, say)
    # must still end the loop: otherwise a server would never finish shutting down
    while me is None or not me.cancelling():
        try:
            expired = await sweep_once(inventory)
            if expired:
                log.info("sweeper returned %d expired holds", expired)
        except Exception:  # Redis away for a moment: log, wait, try again
            log.exception("sweeper pass failed")
        for job in jobs or []:
            if time.monotonic() < job.due:
                continue
            job.due = time.monotonic() + job.every
            try:
                if done := await job.run():
                    log.info("%s: %d", job.name, done)
            except Exception:  # Postgres or a gateway away for a moment: the next round retries
                log.exception("%s failed", job.name)
        await asyncio.sleep(interval)
