"""Provider JSON API: a provider's own events, their lifecycle, packages, sections and seats.

Every route needs the provider (or admin) role. The catalog checks the event is the caller's
(another provider's answers 404) and, on every write, the provider's standing: pending providers
work on drafts only; suspended or rejected providers change nothing, while their live events keep
selling as they are until an admin, who may act on any event here, postpones or cancels them.
"""

from __future__ import annotations

from aiohttp import web

from engine import catalog_types as t
from engine.accounts import User
from engine.errors import Forbidden
from storefront.api import Api, path_int
from storefront.appkeys import CATALOG, EVENT_CACHE
from storefront.auth import provider_scope
from storefront.availability import with_availability, with_seat_states

api = Api()
PROVIDERS = ("provider", "admin")
EVENT = r"/api/provider/events/{event_id:\d+}"
TAG = "provider"


def _scope(user: User) -> int | None:
    return provider_scope(user)


@api.get("/api/provider/events", roles=PROVIDERS, response=list[t.Event], tag=TAG,
         summary="The caller's events, every status", errors=(401, 403))
async def my_events(request: web.Request, user: User) -> list[t.Event]:
    scope = _scope(user)
    if scope is None:
        raise Forbidden("admins list every provider's events with GET /api/admin/events")
    return await request.app[CATALOG].provider_events(scope)


@api.post("/api/provider/events", roles=PROVIDERS, body=t.EventCreate, response=t.Event,
          status=201, tag=TAG, summary="Create an event (as a draft)",
          errors=(400, 401, 403, 409, 415, 422))
async def create_event(request: web.Request, user: User, body: t.EventCreate) -> t.Event:
    scope = _scope(user)
    if scope is None:
        raise Forbidden("admins do not own events; create it from a provider account")
    return await request.app[CATALOG].create_event(scope, body)


@api.get(EVENT, roles=PROVIDERS, response=t.EventDetail, tag=TAG,
         summary="One of the caller's events with all its packages", errors=(401, 403, 404))
async def get_event(request: web.Request, user: User) -> t.EventDetail:
    detail = await request.app[CATALOG].provider_event(_scope(user), path_int(request, "event_id"))
    return await with_availability(request.app, detail)


@api.patch(EVENT, roles=PROVIDERS, body=t.EventUpdate, response=t.Event, tag=TAG,
           summary="Change an event's details", errors=(400, 401, 403, 404, 409, 415, 422))
async def update_event(request: web.Request, user: User, body: t.EventUpdate) -> t.Event:
    """Guest checkout and the buyer cap are in the live stock too (the hold script checks them in
    every process at once); this process's cache of the event is dropped as well."""
    event = await request.app[CATALOG].update_event(_scope(user), path_int(request, "event_id"), body)
    request.app[EVENT_CACHE].forget(event.id)
    return event


async def _transition(request: web.Request, user: User, target: str,
                      body: t.Postpone | None = None) -> t.Event:
    event = await request.app[CATALOG].transition(
        _scope(user), path_int(request, "event_id"), target,
        starts_at=body.starts_at if body else None, ends_at=body.ends_at if body else None)
    request.app[EVENT_CACHE].forget(event.id)
    return event


@api.post(EVENT + "/publish", roles=PROVIDERS, response=t.Event, tag=TAG,
          summary="Publish a draft or postponed event (puts it on sale)", errors=(401, 403, 404, 409, 422))
async def publish(request: web.Request, user: User) -> t.Event:
    return await _transition(request, user, "published")


@api.post(EVENT + "/cancel", roles=PROVIDERS, response=t.Event, tag=TAG,
          summary="Cancel an event", errors=(401, 403, 404, 409))
async def cancel(request: web.Request, user: User) -> t.Event:
    return await _transition(request, user, "cancelled")


@api.post(EVENT + "/postpone", roles=PROVIDERS, body=t.Postpone, response=t.Event, tag=TAG,
          summary="Postpone an event, with new dates when known", errors=(401, 403, 404, 409, 422))
async def postpone(request: web.Request, user: User, body: t.Postpone) -> t.Event:
    return await _transition(request, user, "postponed", body)


@api.post(EVENT + "/complete", roles=PROVIDERS, response=t.Event, tag=TAG,
          summary="Mark an event as completed", errors=(401, 403, 404, 409))
async def complete(request: web.Request, user: User) -> t.Event:
    return await _transition(request, user, "completed")


@api.post(EVENT + "/packages", roles=PROVIDERS, body=t.PackageCreate, response=t.Package,
          status=201, tag=TAG, summary="Add a ticket package (tier) with its sale window",
          errors=(400, 401, 403, 404, 409, 415, 422))
async def create_package(request: web.Request, user: User, body: t.PackageCreate) -> t.Package:
    return await request.app[CATALOG].create_package(_scope(user), path_int(request, "event_id"), body)


@api.patch(EVENT + r"/packages/{package_id:\d+}", roles=PROVIDERS, body=t.PackageUpdate,
           response=t.Package, tag=TAG, summary="Change a package: price, capacity, sale window",
           errors=(400, 401, 403, 404, 409, 415, 422))
async def update_package(request: web.Request, user: User, body: t.PackageUpdate) -> t.Package:
    return await request.app[CATALOG].update_package(
        _scope(user), path_int(request, "event_id"), path_int(request, "package_id"), body)


@api.post(EVENT + "/sections", roles=PROVIDERS, body=t.SectionCreate, response=t.Section,
          status=201, tag=TAG, summary="Add a section and generate its seats",
          errors=(400, 401, 403, 404, 409, 415, 422))
async def create_section(request: web.Request, user: User, body: t.SectionCreate) -> t.Section:
    return await request.app[CATALOG].create_section(_scope(user), path_int(request, "event_id"), body)


@api.get(EVENT + "/seating", roles=PROVIDERS, response=t.SeatMap, tag=TAG,
         summary="The seat map of one of the caller's events (drafts too)", errors=(401, 403, 404))
async def seating(request: web.Request, user: User) -> t.SeatMap:
    event_id = path_int(request, "event_id")
    await request.app[CATALOG].provider_event(_scope(user), event_id)
    return await with_seat_states(request.app, await request.app[CATALOG].seat_map(event_id))


@api.post(EVENT + "/seats/block", roles=PROVIDERS, body=t.SeatBlock, response=t.SeatBlockResult, tag=TAG,
          summary="Block seats from sale (or unblock them with blocked=false)",
          errors=(400, 401, 403, 404, 409, 415, 422))
async def block_seats(request: web.Request, user: User, body: t.SeatBlock) -> t.SeatBlockResult:
    """The catalog records it and takes the seats off sale before committing; a seat held or sold
    meanwhile refuses the whole change. Unblocked seats go back on sale after the commit."""
    changed = await request.app[CATALOG].block_seats(_scope(user), path_int(request, "event_id"), body)
    return t.SeatBlockResult(changed=changed)
