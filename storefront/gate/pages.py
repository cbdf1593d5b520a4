"""The gate's pages (server-rendered; behaviour in static/gate.js, looks in static/gate.css):

    GET  /gate                  the events whose gate I may work (staff land here)
    GET  /gate/{event_id}       the scanner: camera or keyboard-wedge scanner, typed numbers,
                                search, the running count; keeps working offline
    GET  /staff/accept?token=   an invitation to be gate staff; POST accepts it (new account
                                from name and password, or the logged-in account)
"""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from engine.errors import DomainError
from storefront.api import convert, path_int
from storefront.appkeys import USER
from storefront.auth import set_session_cookie, start_session
from storefront.errors import ApiError
from storefront.forms import read_form
from storefront.gate.api import ScanIn, ScanOut, scan
from storefront.gate.resources import STAFF, gate_role
from storefront.render import render
from storefront.wording import sentence

routes = web.RouteTableDef()
NO_STORE = {"Cache-Control": "no-store"}


def _login(request: web.Request):
    user = request.get(USER)
    if user is None:
        raise web.HTTPSeeOther("/login?" + urlencode({"next": request.path_qs}))
    return user


@routes.get("/gate")
async def gate_index(request: web.Request) -> web.Response:
    user = _login(request)
    events = await request.app[STAFF].events_for(user)
    return render(request, "gate/index.html", {"events": events}, headers=NO_STORE)


@routes.get(r"/gate/{event_id:\d+}")
async def scanner(request: web.Request) -> web.Response:
    return await _scanner(request, {})


@routes.post(r"/gate/{event_id:\d+}")
async def scanner_form(request: web.Request) -> web.Response:
    """The scanner without JavaScript: one code a post, answered on the page."""
    _login(request)
    form = await read_form(request)
    gate = form.get("gate", "")[:40]
    try:
        body = convert({"event_id": path_int(request, "event_id"), "code": form.get("code", ""),
                        "gate": gate}, ScanIn)
        answer = await scan(request, request[USER], body)
    except (ApiError, DomainError):
        answer = ScanOut(result="unknown", ok=False, words="That is not a ticket code.")
    who = what = ""
    if answer.ticket is not None:
        who = answer.ticket.attendee or ""
        what = " · ".join(x for x in (answer.ticket.package, answer.ticket.seat) if x)
    return await _scanner(request, {"result_words": answer.words, "result_who": who,
                                    "result_what": what, "gate": gate})


async def _scanner(request: web.Request, context: dict) -> web.Response:
    user = _login(request)
    event_id = path_int(request, "event_id")
    role = await gate_role(request, user, event_id)
    event = next((e for e in await request.app[STAFF].events_for(user) if e.id == event_id), None)
    if event is None:
        raise ApiError(404, "not_found", "this event's gate is closed")
    page = {"event": event, "role": role, "result_words": None, "result_who": "",
            "result_what": "", "gate": None, **context}
    return render(request, "gate/scanner.html", page, headers=NO_STORE)


@routes.get("/staff/accept")
async def accept_form(request: web.Request) -> web.Response:
    token = request.query.get("token", "")
    try:
        invite = await request.app[STAFF].pending(token)
    except DomainError:
        return render(request, "gate/accept.html", {"invite": None, "token": ""}, status=404)
    return render(request, "gate/accept.html", {"invite": invite, "token": token, "error": None,
                                                "name": ""}, headers=NO_STORE)


@routes.post("/staff/accept")
async def accept_submit(request: web.Request) -> web.Response:
    form = await read_form(request)
    token, name = form.get("token", ""), form.get("name", "")
    user, invite = request.get(USER), None
    try:
        invite = await request.app[STAFF].pending(token)
        accepted = await request.app[STAFF].accept(token, user, name=name,
                                                   password=form.get("password", ""))
    except DomainError as exc:
        invite = None if exc.code == "invite_invalid" else invite
        return render(request, "gate/accept.html",
                      {"invite": invite, "token": token, "name": name,
                       "error": sentence(exc.message)}, status=404 if invite is None else 422)
    response = web.HTTPSeeOther("/gate")
    if user is None:
        set_session_cookie(request, response, await start_session(request, accepted))
    raise response
