"""The queue page, `GET /events/{slug}/queue`: the event's name, the visitor's place, people
ahead, the estimated wait and a progress bar, kept up to date by static/room.js (Server-Sent
Events, polling when they fail, paused while the tab is hidden). The page solves the join
challenge itself; without JavaScript it explains why it cannot queue and refreshes what it shows.

With the room on, the event page sends visitors here until they hold a pass (`may_choose`).
"""

from __future__ import annotations

from aiohttp import web

from engine.errors import NotFound
from engine.room.tokens import read_pass
from storefront.appkeys import DETAILS, EVENT_CACHE, SETTINGS
from storefront.buyer import current_buyer
from storefront.render import render
from storefront.room.api import status_of
from storefront.room.service import ROOM, figures, give_pass, pass_cookie

routes = web.RouteTableDef()


async def may_choose(request: web.Request, event_id: int) -> bool:
    """Whether the caller holds a pass of their own for this event that is live or made their
    basket (then the event page shows; a hold there still checks the pass)."""
    buyer = current_buyer(request)
    found = read_pass(request.app[SETTINGS].secret_key, request.cookies.get(pass_cookie(event_id), ""))
    if buyer is None or found is None or found.event_id != event_id or found.buyer != buyer:
        return False
    verdict = await request.app[ROOM].check_pass(event_id, buyer, found.number)
    return verdict in ("ok", "pass_used")


@routes.get("/events/{slug}/queue")
async def queue_page(request: web.Request) -> web.Response:
    slug = request.match_info["slug"]
    detail = await request.app[DETAILS].detail(slug=slug)
    if detail is None:
        raise NotFound(f"there is no event at /events/{slug}")
    facts = await request.app[EVENT_CACHE].get(detail.id)
    if not facts.uses_waiting_room:
        raise web.HTTPSeeOther(f"/events/{detail.slug}")
    buyer = current_buyer(request)
    found = await figures(request, facts, buyer)
    status = status_of(facts, found)
    response = render(request, "room/queue.html", {"event": detail, "status": status})
    response.headers["Cache-Control"] = "no-store"
    if buyer is not None:
        give_pass(request, response, facts.id, buyer, found)
    return response
