"""The provider's side of an event's waiting room: settings and live figures.

    GET   /api/provider/events/{id}/room   settings and figures (queue length, passes given, used
                                           and expired, the estimated time to clear the line)
    PATCH /api/provider/events/{id}/room   change settings: on/off, rate, pause, difficulty,
                                           release time, pass lifetime (live: the next tick uses them)
    GET   /provider/events/{id}/room       the control page (its figures refresh by themselves)
    POST  /provider/events/{id}/room       the control page's form (CSRF-checked by auth_middleware)

The event's provider or an admin only: another provider's event answers 404, as a missing one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

import msgspec
from aiohttp import web

from engine.errors import Forbidden, NotFound
from engine.room import RoomFigures, RoomSettings
from engine.room.store import RoomUpdate
from engine.room.tokens import effective_difficulty
from storefront.api import Api, convert, path_int
from storefront.appkeys import CATALOG, EVENT_CACHE, SETTINGS, USER
from storefront.auth import provider_scope
from storefront.errors import ApiError
from storefront.forms import read_form
from storefront.render import render
from storefront.room.service import ROOM, ROOM_STORE
from storefront.room.words import STATES

api = Api()
routes = web.RouteTableDef()
PROVIDERS = ("provider", "admin")
TAG = "provider"
PATH = r"/provider/events/{event_id:\d+}/room"


class RoomView(msgspec.Struct, kw_only=True):
    event_id: int
    settings: RoomSettings
    state: str
    queued: int
    admitted: int  # passes given, ever
    live_passes: int  # given and neither used nor expired yet
    used: int
    expired: int
    available: int
    held: int
    joins_per_second: int
    difficulty_now: int  # the provider's difficulty, raised while joins spike
    clear_seconds: int | None  # estimated time to admit everyone queued, at the set rate


async def _own(request: web.Request, user) -> int:
    event_id = path_int(request, "event_id")
    try:
        scope = provider_scope(user)
    except ApiError:
        raise NotFound(f"no event {event_id}") from None
    await request.app[CATALOG].provider_event(scope, event_id)
    return event_id


async def view(request: web.Request, event_id: int) -> RoomView:
    room_settings = await request.app[ROOM_STORE].get(event_id)
    room = request.app[ROOM]
    found: RoomFigures = await room.tick(event_id)
    if found.state == "unconfigured":
        await room.configure(event_id, room_settings)
        found = await room.tick(event_id)
    jps = await room.joins_per_second(event_id)
    rate = room_settings.rate_per_second
    return RoomView(
        event_id=event_id, settings=room_settings,
        state=found.state if room_settings.enabled else "off", queued=found.queued,
        admitted=found.admitted, live_passes=found.live_passes, used=found.used,
        expired=found.expired, available=found.available, held=found.held, joins_per_second=jps,
        difficulty_now=effective_difficulty(room_settings.difficulty, jps,
                                            request.app[SETTINGS].room_join_spike),
        clear_seconds=round(found.queued / rate) if rate > 0 else None)


async def apply(request: web.Request, event_id: int, change: RoomUpdate) -> RoomView:
    room_settings = await request.app[ROOM_STORE].update(event_id, change)
    await request.app[ROOM].configure(event_id, room_settings)
    request.app[EVENT_CACHE].forget(event_id)  # this process sees it at once; others within 5 s
    return await view(request, event_id)


@api.get(r"/api/provider/events/{event_id:\d+}/room", roles=PROVIDERS, response=RoomView,
         tag=TAG, summary="An event's waiting room: settings and live figures",
         errors=(401, 403, 404))
async def get_room(request: web.Request, user) -> RoomView:
    return await view(request, await _own(request, user))


@api.patch(r"/api/provider/events/{event_id:\d+}/room", roles=PROVIDERS, body=RoomUpdate,
           response=RoomView, tag=TAG, errors=(400, 401, 403, 404, 415, 422),
           summary="Change an event's waiting room: on or off, admission rate (visitors a "
                   "second), pause, proof-of-work difficulty, release time, pass lifetime")
async def patch_room(request: web.Request, user, body: RoomUpdate) -> RoomView:
    return await apply(request, await _own(request, user), body)


def _page_user(request: web.Request):
    user = request.get(USER)
    if user is None:
        raise web.HTTPSeeOther("/login?" + urlencode({"next": request.path_qs}))
    if user.role not in PROVIDERS:
        raise Forbidden("this page is for the event's organiser")
    return user


def _form_change(form) -> tuple[RoomUpdate, dict[str, str]]:
    action = form.get("action", "save")
    if action in ("pause", "resume"):
        return RoomUpdate(paused=action == "pause"), {}
    data: dict[str, object] = {"enabled": form.get("enabled") == "on"}
    problems: dict[str, str] = {}
    for name, kind in (("rate_per_second", float), ("difficulty", int), ("pass_seconds", int)):
        try:
            data[name] = kind(form.get(name, ""))
        except ValueError:
            problems[name] = "Enter a number."
    release = form.get("release_at", "").strip()
    if release:
        try:
            data["release_at"] = datetime.fromisoformat(release).replace(tzinfo=UTC)
        except ValueError:
            problems["release_at"] = "Enter a date and time, or leave it empty."
    else:
        data["release_at"] = None
    if problems:
        return RoomUpdate(), problems
    try:
        return convert(data, RoomUpdate, strict=False), {}
    except ApiError as exc:
        return RoomUpdate(), {k: "Out of range." for k in exc.fields} or {"form": exc.message}


async def _page(request: web.Request, event_id: int, problems: dict[str, str] | None = None,
                status: int = 200) -> web.Response:
    shown = await view(request, event_id)
    facts = await request.app[CATALOG].event_detail(event_id=event_id, public_only=False)
    return render(request, "room/control.html", {
        "room": shown, "event": facts, "state_words": STATES.get(shown.state, shown.state),
        "problems": problems or {}}, status=status)


@routes.get(PATH)
async def control_page(request: web.Request) -> web.Response:
    event_id = await _own(request, _page_user(request))
    return await _page(request, event_id)


@routes.post(PATH)
async def control_form(request: web.Request) -> web.Response:
    event_id = await _own(request, _page_user(request))
    change, problems = _form_change(await read_form(request))
    if problems:
        return await _page(request, event_id, problems, status=422)
    await apply(request, event_id, change)
    raise web.HTTPSeeOther(f"/provider/events/{event_id}/room")
