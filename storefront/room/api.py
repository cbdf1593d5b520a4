"""The visitor's side of the waiting room, as JSON, and its live stream:

    GET  /api/events/{id}/room            the room and the caller's place (sets the pass cookie
                                          once it is the caller's turn)
    GET  /api/events/{id}/room/challenge  a proof-of-work challenge to join with (mints a guest
                                          identity where guests may buy, rationed per address)
    POST /api/events/{id}/room/join       {"challenge", "solution"}: one place per identity
    GET  /events/{id}/room/live           the same status as Server-Sent Events (format 1: each
                                          `data:` is the status object), on change, checked
                                          every `poll_seconds` (2 s near the head of the line,
                                          up to 15 s far back); capped per address and per
                                          process like the availability stream (buy/live.py)
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Annotated

import msgspec
from aiohttp import web
from msgspec import Meta

from engine.errors import RateLimited, Unauthenticated
from engine.room import RoomFigures
from engine.room.queue import Place, State
from engine.room.tokens import effective_difficulty, make_challenge, read_challenge, solves
from storefront.api import Api, json_response, path_int
from storefront.appkeys import EVENT_CACHE, SETTINGS
from storefront.buy.live import LiveStreams, gone, open_stream, write
from storefront.buyer import buyer_for_hold, current_buyer, set_guest_cookie
from storefront.client import client_bucket
from storefront.errors import ApiError, try_later_response
from storefront.event_cache import EventFacts
from storefront.room.service import ROOM, figures, give_pass
from storefront.room.words import JOIN_REFUSALS, place_words

api = Api()
TAG = "waiting room"
EVENT = r"/api/events/{event_id:\d+}/room"
ROOM_STREAMS = web.AppKey("room_streams", LiveStreams)
MIN_POLL_SECONDS, MAX_POLL_SECONDS = 2, 30
HEARTBEAT_SECONDS = 15.0
LIFETIME_SECONDS = 300.0


class RoomStatus(msgspec.Struct, kw_only=True):
    v: int = 1
    event_id: int
    state: State
    place: Place
    ahead: int | None
    queued: int
    wait_seconds: int | None  # estimated, at the set rate; None while nobody is admitted
    progress: float  # 0..1 of the way through the line
    release_at: datetime | None
    server_time: datetime
    message: str
    next: str | None  # where to go now: the event page once it is the caller's turn
    poll_seconds: int  # when to ask again: seldom far back in the line, often near its head


class Challenge(msgspec.Struct, kw_only=True):
    challenge: str
    difficulty: int  # leading zero bits of SHA-256("<challenge>:<solution>")
    expires_at: datetime


class JoinIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    challenge: Annotated[str, Meta(min_length=1, max_length=300)]
    solution: Annotated[str, Meta(min_length=1, max_length=20, pattern=r"^[0-9]+\Z")]


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def poll_seconds(place: str, wait: float | None) -> int:
    """How long the page (or the live stream) may wait before asking again: a tenth of the
    estimated wait, 2 to 30 s, so a million visitors far back cost Redis little."""
    if place == "queued" and wait is not None:
        return int(min(MAX_POLL_SECONDS, max(MIN_POLL_SECONDS, wait / 10)))
    if place in ("queued", "prequeue"):
        return 15  # paused, all held, before the release: nothing moves for a while
    return MIN_POLL_SECONDS


def status_of(facts: EventFacts, found: RoomFigures) -> RoomStatus:
    state: State = found.state if facts.uses_waiting_room else "off"
    place = found.place if facts.uses_waiting_room else "none"
    ahead = found.ahead if place == "queued" else None
    if place in ("admitted", "used"):
        progress = 1.0
    elif place == "queued" and ahead is not None:
        progress = found.admitted / (found.admitted + ahead + 1)
    else:
        progress = 0.0
    wait = found.wait_seconds() if place == "queued" else None
    return RoomStatus(
        event_id=facts.id, state=state, place=place, ahead=ahead, queued=found.queued,
        wait_seconds=None if wait is None else round(wait), progress=round(progress, 4),
        release_at=_dt(found.release) if found.release else None,
        server_time=_dt(found.now) if found.now else datetime.now(UTC),
        message=place_words(state, place, ahead),
        next=f"/events/{facts.slug}" if state == "off" or place in ("admitted", "used") else None,
        poll_seconds=poll_seconds(place, wait))


@api.get(EVENT, response=RoomStatus, tag=TAG, errors=(404,),
         summary="The waiting room of an event and the caller's place in it (sets the pass "
                 "cookie `kwika_pass_<event id>` when it is the caller's turn)")
async def room_status(request: web.Request) -> web.Response:
    facts = await request.app[EVENT_CACHE].get(path_int(request, "event_id"))
    buyer = current_buyer(request)
    found = await figures(request, facts, buyer)
    response = json_response(status_of(facts, found))
    response.headers["Cache-Control"] = "no-store"
    if buyer is not None and facts.uses_waiting_room:
        give_pass(request, response, facts.id, buyer, found)
    return response


@api.get(EVENT + "/challenge", response=Challenge, tag=TAG, errors=(401, 404, 409, 429),
         summary="A proof-of-work challenge to join the line with (bound to the caller's "
                 "identity; a guest identity is made where guests may buy)")
async def challenge(request: web.Request) -> web.Response:
    facts = await request.app[EVENT_CACHE].get(path_int(request, "event_id"))
    if not facts.uses_waiting_room:
        raise ApiError(409, "room_off", JOIN_REFUSALS["room_off"])
    buyer = buyer_for_hold(request, facts.allow_guest_checkout)
    settings = request.app[SETTINGS]
    found = await figures(request, facts, buyer.key)
    difficulty = effective_difficulty(found.difficulty,
                                      await request.app[ROOM].joins_per_second(facts.id),
                                      settings.room_join_spike)
    expires = int(time.time() * 1000) + settings.room_challenge_seconds * 1000
    response = json_response(Challenge(
        challenge=make_challenge(settings.secret_key, facts.id, buyer.key, difficulty, expires),
        difficulty=difficulty, expires_at=_dt(expires)))
    response.headers["Cache-Control"] = "no-store"
    if buyer.new_guest_cookie:
        set_guest_cookie(request, response, buyer.new_guest_cookie)
    return response


@api.post(EVENT + "/join", body=JoinIn, response=RoomStatus, tag=TAG,
          errors=(400, 401, 404, 409, 415, 422, 429),
          summary="Join the line with a solved challenge: one place per identity (joining again "
                  "keeps the place); each challenge is accepted once")
async def join(request: web.Request, body: JoinIn) -> web.Response:
    event_id = path_int(request, "event_id")
    facts = await request.app[EVENT_CACHE].get(event_id)
    if not facts.uses_waiting_room:
        raise ApiError(409, "room_off", JOIN_REFUSALS["room_off"])
    buyer = current_buyer(request)
    if buyer is None:
        raise Unauthenticated("get a challenge first: it gives you an identity to queue with",
                              code="identity_required")
    settings = request.app[SETTINGS]
    found = read_challenge(settings.secret_key, body.challenge)
    if found is None or found.event_id != event_id or found.buyer != buyer:
        raise ApiError(422, "proof_invalid", JOIN_REFUSALS["proof_invalid"],
                       {"challenge": "not a challenge given to you for this event"})
    if found.expires_ms <= time.time() * 1000:
        raise ApiError(422, "proof_expired", JOIN_REFUSALS["proof_expired"],
                       {"challenge": "expired"})
    if not solves(body.challenge, body.solution, found.difficulty):
        raise ApiError(422, "proof_invalid", JOIN_REFUSALS["proof_invalid"],
                       {"solution": "does not solve the challenge"})
    room = request.app[ROOM]
    client = client_bucket(request)
    per_minute, spacing = settings.room_joins_per_ip_per_minute, settings.room_repeat_spacing
    result = await room.join(event_id, buyer, found.nonce, found.expires_ms, client, per_minute,
                             spacing=spacing)
    if result.reason == "unconfigured":
        await figures(request, facts, buyer)  # copies the settings in
        result = await room.join(event_id, buyer, found.nonce, found.expires_ms, client,
                                 per_minute, spacing=spacing)
    if not result.ok:
        reason = result.reason or "room_off"
        if reason == "rate_limited":
            return try_later_response(RateLimited(
                JOIN_REFUSALS[reason], retry_after=(result.retry_after_ms or 1000) / 1000))
        raise ApiError(422 if reason == "bad_input" else 409, reason,
                       JOIN_REFUSALS.get(reason, JOIN_REFUSALS["room_off"]))
    return await room_status(request)




async def live(request: web.Request) -> web.StreamResponse:
    facts = await request.app[EVENT_CACHE].get(path_int(request, "event_id"))
    return await request.app[ROOM_STREAMS].serve(request, lambda: _stream(request, facts))


async def _stream(request: web.Request, facts: EventFacts) -> web.StreamResponse:
    response = await open_stream(request)
    loop = asyncio.get_running_loop()
    started = last_write = loop.time()
    buyer = current_buyer(request)
    sent = None
    try:
        await write(request, response, b"retry: 3000\n\n")
        while not gone(request) and loop.time() - started < LIFETIME_SECONDS:
            facts = await request.app[EVENT_CACHE].get(facts.id)
            status = status_of(facts, await figures(request, facts, buyer))
            shown = msgspec.structs.replace(status, server_time=datetime.fromtimestamp(0, UTC))
            if shown != sent:
                data = msgspec.json.encode(status).decode()
                await write(request, response, f"data: {data}\n\n".encode())
                sent, last_write = shown, loop.time()
                if status.next:
                    break  # the page goes on from here
            elif loop.time() - last_write >= HEARTBEAT_SECONDS:
                await write(request, response, b": still here\n\n")
                last_write = loop.time()
            await asyncio.sleep(min(status.poll_seconds, HEARTBEAT_SECONDS))
    except (ConnectionResetError, ConnectionError):
        pass
    return response


def install(app: web.Application) -> None:
    settings = app[SETTINGS]
    app[ROOM_STREAMS] = LiveStreams(settings.live_streams_per_ip, settings.live_streams_per_process)
    app.router.add_get(r"/events/{event_id:\d+}/room/live", live)


__all__ = ["api", "install"]
