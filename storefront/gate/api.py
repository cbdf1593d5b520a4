"""The gate as JSON (scanners, gate laptops, the scanner page). Every route but the invitation's
needs a login or an API token; those marked *scan* take `scan` tokens (a scanning device's).

    POST   /api/scan                                 a scanned or typed code at a gate  (scan)
    GET    /api/gate/events                          the events whose gate I may work   (scan)
    GET    /api/events/{id}/gate/search?q=           tickets by number, name or email   (scan)
    POST   /api/events/{id}/gate/checkin             check a ticket in by hand          (scan)
    POST   /api/events/{id}/gate/undo                take a check-in back (the provider)
    GET    /api/events/{id}/gate/counts              checked in / expected, per gate    (scan)
    GET    /api/events/{id}/gate/list                the offline list (engine/checkin/offline.py) (scan)
    POST   /api/events/{id}/gate/sync                check-ins made offline             (scan)
    POST   /api/provider/staff/invites               invite gate staff by email
    GET    /api/provider/staff                       the provider's staff and invitations
    DELETE /api/provider/staff/{user_id}             remove a staff member
    POST   /api/staff/accept                         accept an invitation

A scan is answered 200 whatever the ticket's fate (`result` says it, `words` in a sentence for
the gate); 422 only for a code that is not a ticket at all or a bad gate name, 404 for an event
whose gate the caller may not work (nothing changes).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web
from msgspec import Meta

from engine import metrics
from engine.accounts import Email, User
from engine.checkin.desk import (
    GATE_NAME,
    MAX_SYNC,
    Result,
    Synced,
    SyncItem,
    check_gate,
    read_code,
)
from engine.checkin.offline import gate_list, shown
from engine.checkin.search import find_tickets
from engine.checkin.staff import GateEvent, Invite, Member, NewInvite
from storefront.api import Api, json_response, path_int
from storefront.appkeys import DB, KEYS, REDIS, USER
from storefront.auth import provider_scope
from storefront.errors import ApiError
from storefront.gate.counts import counts_of
from storefront.gate.resources import DESK, LABELS, STAFF, gate_role
from storefront.gate.words import RESULT_WORDS, result_words
from storefront.ticket_keys import KEYRING
from storefront.urls import public_url

api = Api()
TAG = "gate"
ANY = ()  # any logged-in user; the event's gate role is checked per event
Gate = Annotated[str, Meta(pattern=GATE_NAME)]
Code = Annotated[str, Meta(min_length=1, max_length=200)]
Number = Annotated[str, Meta(pattern=r"^TKT-[1-9][0-9]{0,18}-[0-9A-Z]{4,24}$")]


class ScanIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    event_id: Annotated[int, Meta(ge=1, le=2**62)]
    code: Code  # the QR payload, or a ticket number typed by hand
    gate: Gate


class TicketOut(msgspec.Struct, kw_only=True):
    ticket_number: str
    status: str | None
    attendee: str | None
    package: str | None
    seat: str | None
    checked_in_at: int | None  # ms since the epoch
    gate: str | None


class ScanOut(msgspec.Struct, kw_only=True):
    result: Result
    ok: bool  # admitted (or a harmless repeat): let them in
    words: str
    ticket: TicketOut | None = None
    server_time: int = 0


class ManualIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    ticket_number: Number
    gate: Gate


class UndoIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    ticket_number: Number


class UndoOut(msgspec.Struct, kw_only=True):
    result: str  # undone | not_used | unknown
    ticket: TicketOut | None


class SearchQuery(msgspec.Struct, kw_only=True):
    q: Annotated[str, Meta(min_length=2, max_length=100)]


class Found(TicketOut, kw_only=True):
    email: str


class CountsOut(msgspec.Struct, kw_only=True):
    checked_in: int
    expected: int
    gates: dict[str, int]


class SyncIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    gate: Gate
    items: Annotated[list[SyncItem], Meta(min_length=1, max_length=MAX_SYNC)]


class SyncedOut(msgspec.Struct, kw_only=True):
    id: str
    result: str
    ticket: TicketOut | None
    was: TicketOut | None  # "first": the later check-in this one replaced


class SyncOut(msgspec.Struct, kw_only=True):
    results: list[SyncedOut]
    conflicts: int


class InviteIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    email: Email
    event_ids: Annotated[list[Annotated[int, Meta(ge=1, le=2**62)]], Meta(max_length=200)] | None = None


class InviteOut(NewInvite, kw_only=True):
    link: str


class StaffOut(msgspec.Struct, kw_only=True):
    members: list[Member]
    invites: list[Invite]


class AcceptIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    token: Annotated[str, Meta(min_length=10, max_length=100)]
    name: Annotated[str, Meta(max_length=120)] | None = None
    password: Annotated[str, Meta(max_length=256)] | None = None


class AcceptOut(msgspec.Struct, kw_only=True):
    user_id: int
    email: str
    role: str


def who(user: User) -> str:
    return f"u:{user.id}"


async def ticket_out(request: web.Request, event_id: int, ticket) -> TicketOut | None:
    if ticket is None or not ticket.t:
        return None
    packages, seats = await request.app[LABELS].of(event_id)
    return TicketOut(**shown(ticket, packages, seats))


async def _answer(request: web.Request, event_id: int, scan) -> ScanOut:
    metrics.SCANS.labels(scan.r).inc()
    ticket = await ticket_out(request, event_id, scan.ticket)
    return ScanOut(result=scan.r, ok=scan.r in ("admitted", "repeat"), ticket=ticket,
                   words=result_words(scan.r, ticket), server_time=scan.now)


@api.post("/api/scan", body=ScanIn, response=ScanOut, roles=ANY, scan=True, hot=True, tag=TAG,
          errors=(401, 403, 404, 422), summary="Scan a ticket at a gate: "
          + ", ".join(f"{k} ({v})" for k, v in RESULT_WORDS.items()))
async def scan(request: web.Request, user: User, body: ScanIn) -> ScanOut:
    gate = check_gate(body.gate)
    # no I/O before this: a forgery costs one signature check, and says nothing of the event
    code = read_code(request.app[KEYRING].public_keys, body.code, body.event_id)
    await gate_role(request, user, body.event_id)
    if isinstance(code, str):
        metrics.SCANS.labels(code).inc()
        return ScanOut(result=code, ok=False, words=result_words(code, None))
    return await _answer(request, body.event_id, await request.app[DESK].check_in(
        body.event_id, code[0], code[1], gate, who(user)))


@api.get("/api/gate/events", response=list[GateEvent], roles=ANY, scan=True, tag=TAG,
         summary="The events whose gate I may work")
async def gate_events(request: web.Request, user: User) -> list[GateEvent]:
    return await request.app[STAFF].events_for(user)


@api.get("/api/events/{event_id}/gate/search", query=SearchQuery, response=list[Found],
         roles=ANY, scan=True, tag=TAG, errors=(404, 422),
         summary="Find tickets by ticket number, attendee name or email")
async def search(request: web.Request, user: User, query: SearchQuery) -> list[Found]:
    event_id = path_int(request, "event_id")
    await gate_role(request, user, event_id)
    register = request.app[DESK].event_keys(event_id)[0]
    found = await find_tickets(request.app[DB], request.app[REDIS], register, event_id, query.q)
    out = []
    for ticket, email in found:
        shown_ticket = await ticket_out(request, event_id, ticket)
        out.append(Found(**msgspec.structs.asdict(shown_ticket), email=email))
    return out


@api.post("/api/events/{event_id}/gate/checkin", body=ManualIn, response=ScanOut, roles=ANY,
          scan=True, tag=TAG, errors=(404, 422), summary="Check a ticket in by hand")
async def manual(request: web.Request, user: User, body: ManualIn) -> ScanOut:
    event_id = path_int(request, "event_id")
    await gate_role(request, user, event_id)
    if not body.ticket_number.startswith(f"TKT-{event_id}-"):
        return ScanOut(result="wrong_event", ok=False, words=result_words("wrong_event", None))
    return await _answer(request, event_id, await request.app[DESK].check_in(
        event_id, body.ticket_number, None, body.gate, who(user)))


@api.post("/api/events/{event_id}/gate/undo", body=UndoIn, response=UndoOut, roles=ANY,
          tag=TAG, errors=(403, 404, 422), summary="Take a check-in back (the provider)")
async def undo(request: web.Request, user: User, body: UndoIn) -> UndoOut:
    event_id = path_int(request, "event_id")
    if await gate_role(request, user, event_id) != "provider":
        raise ApiError(403, "forbidden", "only the event's provider can take a check-in back")
    done = await request.app[DESK].undo(event_id, body.ticket_number, who(user))
    return UndoOut(result=done.r, ticket=await ticket_out(request, event_id, done.ticket))


@api.get("/api/events/{event_id}/gate/counts", response=CountsOut, roles=ANY, scan=True,
         tag=TAG, errors=(404,), summary="Checked in and expected, per gate")
async def counts(request: web.Request, user: User) -> CountsOut:
    event_id = path_int(request, "event_id")
    await gate_role(request, user, event_id)
    return CountsOut(**await counts_of(request.app, event_id))


@api.get("/api/events/{event_id}/gate/list", roles=ANY, scan=True, tag=TAG, errors=(304, 404),
         summary="The offline list: public keys and every ticket's state (If-None-Match)")
async def offline_list(request: web.Request, user: User) -> web.StreamResponse:
    event_id = path_int(request, "event_id")
    await gate_role(request, user, event_id)
    packages, seats = await request.app[LABELS].of(event_id)
    now = await request.app[REDIS].time()
    doc = await gate_list(request.app[REDIS], request.app[DESK].event_keys(event_id)[0], event_id,
                          request.app[KEYRING], packages, seats, now[0] * 1000 + now[1] // 1000)
    etag = f'"{doc["version"]}"'
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    return json_response(doc, headers=headers)


@api.post("/api/events/{event_id}/gate/sync", body=SyncIn, response=SyncOut, roles=ANY,
          scan=True, tag=TAG, errors=(404, 422),
          summary="Check-ins made offline; the first scan wins, conflicts are listed")
async def sync(request: web.Request, user: User, body: SyncIn) -> SyncOut:
    event_id = path_int(request, "event_id")
    await gate_role(request, user, event_id)
    results: list[Synced] = await request.app[DESK].sync(
        request.app[KEYRING].public_keys, event_id, body.items, body.gate, who(user))
    out = [SyncedOut(id=r.id, result=r.r, ticket=await ticket_out(request, event_id, r.ticket),
                     was=await ticket_out(request, event_id, r.was)) for r in results]
    return SyncOut(results=out, conflicts=sum(r.result not in ("admitted", "duplicate")
                                              for r in out))


# --- staff -------------------------------------------------------------------------------------
@api.post("/api/provider/staff/invites", body=InviteIn, response=InviteOut, status=201,
          roles=("provider",), tag=TAG, errors=(403, 404, 422),
          summary="Invite gate staff by email, for all events or some")
async def invite(request: web.Request, user: User, body: InviteIn) -> InviteOut:
    made = await request.app[STAFF].invite(provider_scope(user), user.id, body.email,
                                           body.event_ids)
    link = f"{public_url(request)}/staff/accept?token={made.token}"
    # the mail worker sends it (fulfillment/mail/delivery.py, kind staff_invite)
    await request.app[REDIS].xadd(request.app[KEYS].deliveries(), {
        "kind": "staff_invite", "invite": str(made.id), "token": made.token})
    return InviteOut(**msgspec.structs.asdict(made), link=link)


@api.get("/api/provider/staff", response=StaffOut, roles=("provider",), tag=TAG,
         summary="The provider's gate staff and invitations")
async def staff_list(request: web.Request, user: User) -> StaffOut:
    provider_id = provider_scope(user)
    staff = request.app[STAFF]
    return StaffOut(members=await staff.members(provider_id),
                    invites=await staff.invites(provider_id))


@api.delete("/api/provider/staff/{user_id}", roles=("provider",), tag=TAG, errors=(404,),
            status=204, summary="Remove a gate staff member (their access ends at once)")
async def staff_remove(request: web.Request, user: User) -> None:
    await request.app[STAFF].remove(provider_scope(user), path_int(request, "user_id"))


@api.post("/api/staff/accept", body=AcceptIn, response=AcceptOut, tag=TAG,
          errors=(404, 409, 422), summary="Accept a gate staff invitation (logged in, or a new "
          "account from name and password)")
async def accept(request: web.Request, body: AcceptIn) -> AcceptOut:
    user = await request.app[STAFF].accept(body.token, request.get(USER), name=body.name,
                                           password=body.password)
    return AcceptOut(user_id=user.id, email=user.email, role=user.role)
