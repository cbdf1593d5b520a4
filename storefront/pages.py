"""Server-rendered pages: events index and detail, calendar file, log in, register, log out."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDict

from engine import catalog_types as t
from engine.accounts import Credentials, Registration
from engine.errors import DomainError
from storefront.api import convert, decode_query
from storefront.appkeys import ACCOUNTS, CATALOG, SESSION
from storefront.auth import SESSION_COOKIE, set_session_cookie, start_session
from storefront.availability import live_summaries
from storefront.buy.choosing import event_badge
from storefront.buy.picker import published_event, render_event
from storefront.calendar import ics
from storefront.client import client_bucket
from storefront.covers import cover_svg
from storefront.errors import ApiError, status_for
from storefront.forms import read_form
from storefront.render import render
from storefront.room.pages import may_choose
from storefront.urls import public_url
from storefront.wording import form_errors, form_message, sentence

routes = web.RouteTableDef()


@routes.get("/")
async def home(request: web.Request) -> web.Response:
    raise web.HTTPFound("/events")


FAVICON = Path(__file__).parent / "static" / "favicon.svg"


@routes.get("/favicon.ico")
async def favicon(request: web.Request) -> web.StreamResponse:
    """Browsers ask for /favicon.ico whatever the page links; every current one reads an SVG."""
    return web.FileResponse(FAVICON, headers={"Content-Type": "image/svg+xml",
                                              "Cache-Control": "public, max-age=86400"})


PAGE_ONLY_PARAMS = ("view",)  # the index page's own parameters, not search filters
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _index_query(request: web.Request) -> t.EventQuery:
    """The search filters of the index page's URL. The form's date inputs send `YYYY-MM-DD`:
    `date_from` is taken from the start of that day and `date_to` to its end (UTC)."""
    params = MultiDict((k, v) for k, v in request.query.items() if k not in PAGE_ONLY_PARAMS)
    for key, clock in (("date_from", "00:00:00"), ("date_to", "23:59:59")):
        value = params.get(key, "")
        if _DATE.match(value):
            params[key] = f"{value}T{clock}Z"
    return decode_query(request.clone(rel_url=request.rel_url.with_query(params)), t.EventQuery)


@routes.get("/events")
async def events_index(request: web.Request) -> web.Response:
    query = _index_query(request)
    page, statuses = await live_summaries(request.app, await request.app[CATALOG].search(query))
    view = "list" if request.query.get("view") == "list" else "grid"
    params = {k: v for k, v in request.query.items() if k != "page" and v}

    def page_url(number: int) -> str:
        return "/events?" + urlencode({**params, "page": number})

    return render(request, "events/index.html", {
        "page": page, "query": query,
        "badges": {e.id: event_badge(e, statuses.get(e.id)) for e in page.items},
        "cover": cover_svg, "view": view, "page_url": page_url,
        "categories": await request.app[CATALOG].categories(),
        "view_url": lambda v: "/events?" + urlencode({**params, "view": v}),
    })


@routes.get("/events/{slug}")
async def event_detail(request: web.Request) -> web.Response:
    event = await published_event(request)
    if event.uses_waiting_room and not await may_choose(request, event.id):
        raise web.HTTPSeeOther(f"/events/{event.slug}/queue")  # the line first
    return render_event(request, event)


@routes.get("/events/{slug}/calendar.ics")
async def event_ics(request: web.Request) -> web.Response:
    event = await published_event(request)
    url = f"{public_url(request)}/events/{event.slug}"
    return web.Response(
        text=ics(event, url), content_type="text/calendar", charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{event.slug}.ics"'})


# --- accounts --------------------------------------------------------------------------------
def _safe_next(value: str | None) -> str:
    """Only same-site paths: `//evil.example`, absolute URLs and anything with a backslash,
    whitespace or control character (browsers drop tabs and newlines, so `/\t/evil.example`
    would become `//evil.example`) fall back to /events."""
    if (value and value.startswith("/") and not value.startswith("//")
            and not any(ch == "\\" or ch.isspace() or not ch.isprintable() for ch in value)):
        return value
    return "/events"


@routes.get("/login")
async def login_form(request: web.Request) -> web.Response:
    return render(request, "accounts/login.html", {"error": None, "email": "",
                                                   "next": _safe_next(request.query.get("next"))})


@routes.post("/login")
async def login_submit(request: web.Request) -> web.Response:
    form = await read_form(request)
    email, next_url = form.get("email", ""), _safe_next(form.get("next", ""))
    try:
        creds = convert({"email": email, "password": form.get("password", "")}, Credentials)
        user = await request.app[ACCOUNTS].authenticate(creds, ip=client_bucket(request))
    except (ApiError, DomainError) as exc:
        message = (sentence(exc.message) if isinstance(exc, DomainError)
                   else "Enter your email address and password.")
        return render(request, "accounts/login.html",
                      {"error": message, "email": email, "next": next_url}, status=401)
    if user.role == "staff" and next_url == "/events":
        next_url = "/gate"  # gate staff come to scan
    session = await start_session(request, user)
    response = web.HTTPSeeOther(next_url)
    set_session_cookie(request, response, session)
    raise response


@routes.get("/register")
async def register_form(request: web.Request) -> web.Response:
    return render(request, "accounts/register.html", {"errors": {}, "form": {}, "error": None})


@routes.post("/register")
async def register_submit(request: web.Request) -> web.Response:
    form = {k: v for k, v in (await read_form(request)).items() if k != "csrf_token" and v != ""}
    try:
        data = convert(form, Registration)
        user = await request.app[ACCOUNTS].register(data, ip=client_bucket(request))
    except (ApiError, DomainError) as exc:
        status = exc.status if isinstance(exc, ApiError) else status_for(exc)
        return render(request, "accounts/register.html", {
            "errors": form_errors(exc.fields), "form": form,
            "error": form_message(exc.message, exc.fields)}, status=status)
    session = await start_session(request, user)
    response = web.HTTPSeeOther("/events")
    set_session_cookie(request, response, session)
    raise response


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    if (session := request.get(SESSION)) is not None:
        await request.app[ACCOUNTS].close_session(session.id)
    response = web.HTTPSeeOther("/events")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response

