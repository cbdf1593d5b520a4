"""The gate's parts in the app (typed keys), made at start-up and closed at shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from engine.accounts import User
from engine.checkin.access import GateAccess
from engine.checkin.desk import GateDesk
from engine.checkin.labels import EventLabels
from engine.checkin.staff import Staff
from storefront.appkeys import ACCOUNTS, DB, INVENTORY, KEYS, REDIS
from storefront.errors import ApiError

DESK = web.AppKey("gate_desk", GateDesk)
ACCESS = web.AppKey("gate_access", GateAccess)
STAFF = web.AppKey("gate_staff", Staff)
LABELS = web.AppKey("gate_labels", EventLabels)
EXPECTED = web.AppKey("gate_expected", dict)  # event id -> (fresh until, tickets expected)


async def resources(app: web.Application) -> AsyncIterator[None]:
    # the desk shares the inventory's script runner: scans and holds ride the same pipelines
    app[DESK] = GateDesk(app[REDIS], app[KEYS], app[INVENTORY].runner)
    app[ACCESS] = GateAccess(app[DB], app[REDIS], app[KEYS])
    app[STAFF] = Staff(app[DB], app[ACCOUNTS], app[ACCESS])
    app[LABELS] = EventLabels(app[DB])
    app[EXPECTED] = {}
    yield


async def gate_role(request: web.Request, user: User, event_id: int) -> str:
    """`provider` or `staff` at the gate of `event_id`; 404 otherwise (another provider's event
    answers exactly as a missing one)."""
    role = await request.app[ACCESS].role_at(user, event_id)
    if role is None:
        raise ApiError(404, "not_found", f"no event {event_id} whose gate you may work")
    return role
