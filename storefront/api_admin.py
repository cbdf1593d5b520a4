"""Admin JSON API: oversight of every provider's events, read-only."""

from __future__ import annotations

from typing import get_args

from aiohttp import web

from engine import catalog_types as t
from storefront.api import Api
from storefront.appkeys import CATALOG
from storefront.availability import with_live_summaries

api = Api()
ALL_STATUSES: tuple[str, ...] = get_args(t.EventStatus)


@api.get("/api/admin/events", roles=("admin",), query=t.AdminEventQuery, response=t.EventPage,
         tag="admin", summary="Every provider's events in any status (or one `status`), with the "
                              "public search's filters", errors=(401, 403, 422))
async def all_events(request: web.Request, query: t.AdminEventQuery) -> t.EventPage:
    statuses = (query.status,) if query.status else ALL_STATUSES
    page = await request.app[CATALOG].search(query, statuses=statuses)
    return await with_live_summaries(request.app, page)
