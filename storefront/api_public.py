"""Public JSON API: browse and search events, one event, its seat map."""

from __future__ import annotations

from aiohttp import web

from engine import catalog_types as t
from engine.errors import NotFound
from storefront.api import Api, path_int
from storefront.appkeys import CATALOG, DETAILS
from storefront.availability import with_availability, with_live_summaries, with_seat_states

api = Api()


@api.get("/api/events", query=t.EventQuery, response=t.EventPage, tag="events",
         summary="Search published events: keyword, category, dates, city or radius, sort, pages",
         errors=(422,))
async def list_events(request: web.Request, query: t.EventQuery) -> t.EventPage:
    return await with_live_summaries(request.app, await request.app[CATALOG].search(query))


@api.get("/api/events/{slug}", response=t.EventDetail, tag="events",
         summary="One event with its packages, price range and availability", errors=(404,))
async def get_event(request: web.Request) -> t.EventDetail:
    slug = request.match_info["slug"]
    detail = await request.app[DETAILS].detail(slug=slug)
    if detail is None:
        raise NotFound(f"no published event with slug {slug!r}")
    return await with_availability(request.app, detail)


@api.get(r"/api/events/{event_id:\d+}/seating", response=t.SeatMap, tag="events",
         summary="The seat map of a seated event, with each seat's state and price", errors=(404,))
async def get_seating(request: web.Request) -> t.SeatMap:
    event_id = path_int(request, "event_id")
    details = request.app[DETAILS]
    detail = await details.detail(event_id=event_id)
    if detail is None:
        raise NotFound(f"no published event with id {event_id}")
    return await with_seat_states(request.app, await details.seat_map(event_id))
