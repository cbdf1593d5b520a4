"""Checked in and expected, per event and gate. Checked in comes from the check-in counts in
Redis (kept by the check-in scripts); expected, the event's tickets that can come in (valid or
used), from Postgres, read at most every `EXPECTED_SECONDS` per event and process."""

from __future__ import annotations

import time

from aiohttp import web

from storefront.appkeys import DB
from storefront.gate.resources import DESK, EXPECTED

EXPECTED_SECONDS = 10.0


async def expected(app: web.Application, event_id: int) -> int:
    _expected = app[EXPECTED]
    hit = _expected.get(event_id)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    n = await app[DB].fetchval("SELECT count(*) FROM tickets WHERE event_id = $1 "
                               "AND status IN ('valid', 'used')", event_id)
    if len(_expected) > 1000:
        _expected.clear()
    _expected[event_id] = (time.monotonic() + EXPECTED_SECONDS, n)
    return n


async def counts_of(app: web.Application, event_id: int) -> dict:
    """{"checked_in", "expected", "gates": {name: checked in}}."""
    raw = await app[DESK].counts(event_id)
    gates = {k[2:]: v for k, v in sorted(raw.items()) if k.startswith("g:") and v > 0}
    return {"checked_in": raw.get("in", 0), "expected": await expected(app, event_id),
            "gates": gates}
