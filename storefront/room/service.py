"""The room of a request's event: its figures (Redis's copy of the settings made again from
Postgres when missing), the visitor's pass cookie, and the gate of the buying routes.

The pass lives in the cookie `kwika_pass_<event id>` (engine/room/tokens.py, purpose "pass"). With
the room on, a hold or best-available needs a live pass of the caller's own identity for this
event (403 otherwise, with the reason), and the pass is then used: it stands for that one basket,
whose checkout needs it too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web

from engine import metrics
from engine.inventory import Hold, derived_hold_id
from engine.room import RoomFigures, RoomStore, WaitingRoom
from engine.room.tokens import Pass, make_pass, read_pass
from storefront.appkeys import INVENTORY, SETTINGS
from storefront.buyer import current_buyer
from storefront.errors import ApiError
from storefront.event_cache import EventFacts
from storefront.room.words import PASS_REFUSALS

log = logging.getLogger(__name__)
ROOM = web.AppKey("room", WaitingRoom)
ROOM_STORE = web.AppKey("room_store", RoomStore)
NOBODY = "-"  # the buyer key of a status read by a visitor with no identity yet


def pass_cookie(event_id: int) -> str:
    return f"kwika_pass_{event_id}"


async def figures(request: web.Request, facts: EventFacts, buyer: str | None) -> RoomFigures:
    """The room and `buyer`'s place in it, after a tick. Settings missing from Redis (a restart),
    or saying the room is on when the event says off or the other way round (the room turned on
    or off by editing the event), are copied in from Postgres first."""
    room = request.app[ROOM]
    found = await room.status(facts.id, buyer or NOBODY)
    if found.state == "unconfigured" or (found.state == "off") == facts.uses_waiting_room:
        await room.configure(facts.id, await request.app[ROOM_STORE].get(facts.id))
        found = await room.status(facts.id, buyer or NOBODY)
    if found.admitted_now:  # a position read moves the line on too: count what it let in
        metrics.ROOM_ADMITTED.inc(found.admitted_now)
    return found


def give_pass(request: web.Request, response: web.StreamResponse, event_id: int, buyer: str,
              found: RoomFigures) -> None:
    """Set the pass cookie of an admitted visitor (unless it already holds this pass)."""
    if found.place != "admitted" or found.pass_ is None or found.expires is None:
        return
    secret = request.app[SETTINGS].secret_key
    held = read_pass(secret, request.cookies.get(pass_cookie(event_id), ""))
    if held and held.number == found.pass_ and held.buyer == buyer:
        return
    value = make_pass(secret, event_id, buyer, found.pass_, found.expires)
    response.set_cookie(pass_cookie(event_id), value, httponly=True, samesite="Lax",
                        secure=request.app[SETTINGS].cookie_secure, path="/",
                        max_age=max(1, (found.expires - found.now) // 1000 + 3600))


def refused(code: str) -> ApiError:
    return ApiError(403, code, PASS_REFUSALS.get(code, PASS_REFUSALS["pass_required"]))


def presented_pass(request: web.Request, event_id: int, buyer: str | None) -> Pass:
    """The caller's pass for `event_id`, signed, for this event and this buyer, or 403."""
    signed = request.cookies.get(pass_cookie(event_id))
    if not signed:
        raise refused("pass_required")
    found = read_pass(request.app[SETTINGS].secret_key, signed)
    if found is None:
        raise refused("pass_invalid")
    if found.event_id != event_id:
        raise refused("pass_other_event")
    if buyer is None or found.buyer != buyer:
        raise refused("pass_not_yours")
    return found


@dataclass
class Gate:
    """A pass that let a hold request through: `used(hold)` once the basket is made."""

    request: web.Request
    event_id: int
    ticket: Pass
    retry_of: str = ""  # the pass made the basket of this hold id: a retry may only answer it

    async def basket(self) -> Hold:
        """The basket the pass made, for a retry of the request that made it (403 pass_used when
        it is gone: the pass makes no other, under that hold id or any)."""
        hold, _ = await self.request.app[INVENTORY].find_hold(self.event_id, hold_id=self.retry_of)
        if hold is None or hold.buyer != self.ticket.buyer:
            raise refused("pass_used")
        return hold

    async def used(self, hold: Hold) -> ApiError | None:
        """Mark the pass used by `hold`. None when it stands for that basket now; else the refusal,
        with the hold given back: the pass made another basket meanwhile (a concurrent request),
        or made one under this hold id that is gone (given back or run out), and this is a new
        one. A pass that ran out between its check and the hold is let stand (README)."""
        verdict = await self.request.app[ROOM].use_pass(self.event_id, self.ticket.buyer,
                                                        self.ticket.number, hold)
        if verdict in ("ok", "again"):
            return None
        if verdict == "pass_expired":
            log.warning("pass %s of event %s ran out before hold %s", self.ticket.number,
                        self.event_id, hold.id)
            return None
        await self.request.app[INVENTORY].release(self.event_id, hold.id, hold.buyer)
        return refused("pass_used" if verdict == "again" else verdict)


async def hold_gate(request: web.Request, facts: EventFacts, key: str | None) -> Gate | None:
    """None when the event's room is off; else the caller's pass, checked live (403 otherwise).
    With an Idempotency-Key, a pass already used by the hold that key makes is accepted, for a
    retry that answers that hold (`retry_of`), never makes it again."""
    if not facts.uses_waiting_room:
        return None
    buyer = current_buyer(request)
    ticket = presented_pass(request, facts.id, buyer)
    hold_id = ""
    if key is not None and buyer is not None:
        hold_id = derived_hold_id(facts.id, request.app[SETTINGS].secret_key, buyer, key)
    room = request.app[ROOM]
    verdict = await room.check_pass(facts.id, ticket.buyer, ticket.number)
    if verdict == "pass_used" and hold_id:
        verdict = await room.check_pass(facts.id, ticket.buyer, ticket.number, hold_id)
        if verdict == "ok":
            return Gate(request, facts.id, ticket, retry_of=hold_id)
    if verdict != "ok":
        raise refused(verdict)
    return Gate(request, facts.id, ticket)


async def basket_gate(request: web.Request, facts: EventFacts, buyer: str, hold_id: str) -> None:
    """With the room on, the checkout of `hold_id` needs the pass that made that basket, or a live
    pass, which is then used by it (a basket made before the room was on, or whose pass was never
    marked): a pass stands for one basket."""
    if not facts.uses_waiting_room:
        return
    ticket = presented_pass(request, facts.id, buyer)
    room = request.app[ROOM]
    verdict = await room.check_pass(facts.id, buyer, ticket.number, hold_id)
    if verdict == "ok":
        hold, _ = await request.app[INVENTORY].find_hold(facts.id, hold_id=hold_id)
        if hold is not None and hold.buyer == buyer:
            verdict = await room.use_pass(facts.id, buyer, ticket.number, hold)
            verdict = "ok" if verdict == "again" else verdict
    if verdict != "ok":
        raise refused(verdict)
