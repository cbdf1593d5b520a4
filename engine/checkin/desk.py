"""The gate desk: scans, manual check-ins, undos and offline syncs, each one Lua script on the
event's keys (scripts/lua/checkin*.lua, shared parts in includes/checkin.lua).

A scan reads the code first, with no I/O: a QR payload is verified (Ed25519, `verify_ticket`),
so a forgery or a tampered code is answered `forged` for the price of one signature check, and a
ticket of another event `wrong_event`; a ticket number typed by hand is only parsed (no
generation: any generation of that ticket comes in). Only then does the register answer, in one
atomic step: `admitted`, `repeat` (the same ticket at the same gate within `REPEAT_MS`: a
harmless double scan), `used` (when, at which gate), `revoked` (the payload's generation is not
the register's: the ticket was transferred), `refunded`, `cancelled` or `unknown`.

The register entry of a checked-in ticket carries `at` (ms), `gate`, `by` and (offline) `oid`;
register_tickets.lua keeps those fields and never makes a used ticket valid again, so fulfillment
re-registering tickets after a check-in changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

import msgspec
import redis.asyncio as redis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from engine.errors import Invalid
from engine.keys import Keys
from engine.lua import ScriptRunner, load_script
from engine.tickets.payload import InvalidTicket, MalformedTicket, verify_ticket

REPEAT_MS = 30_000
MAX_SYNC = 200
GATE_NAME = r"^[^\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]{1,40}$(?!\n)"
_GATE = re.compile(GATE_NAME)
_NUMBER = re.compile(r"TKT-([1-9][0-9]{0,18})-([0-9A-Z]{4,24})")

Result = Literal["admitted", "repeat", "used", "revoked", "refunded", "cancelled", "unknown",
                 "wrong_event", "forged"]
SyncResult = Literal["admitted", "first", "conflict", "duplicate", "revoked", "refunded",
                     "cancelled", "unknown", "wrong_event", "forged"]


class GateTicket(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A ticket as the gate sees it (the register's entry, check-in fields included)."""

    t: str = ""  # ticket number
    s: str | None = None  # status
    g: int | None = None
    p: int | None = None  # package id
    seat: int | None = None
    n: str | None = None  # attendee name
    at: int | None = None  # checked in at (ms since the epoch)
    gate: str | None = None


class Scan(msgspec.Struct, kw_only=True):
    r: Result
    ticket: GateTicket | None = None
    now: int = 0
    fresh: bool = False  # the check-in made the event's stream (see `_announce`)


class SyncItem(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One check-in an offline gate made: its own id for it, the code, when (ms)."""

    id: str
    code: str
    at: int


class Synced(msgspec.Struct, kw_only=True):
    id: str
    r: SyncResult
    ticket: GateTicket | None = None
    was: GateTicket | None = None  # "first": the later check-in this one replaced


class Undo(msgspec.Struct, kw_only=True):
    r: Literal["undone", "not_used", "unknown"]
    ticket: GateTicket | None = None
    now: int = 0
    fresh: bool = False


class _SyncReply(msgspec.Struct):
    now: int
    results: list[Synced]
    fresh: bool = False


def check_gate(gate: str) -> str:
    gate = gate.strip() if isinstance(gate, str) else ""
    if not _GATE.match(gate):
        raise Invalid("a gate name is 1-40 characters on one line", fields={"gate": "invalid"})
    return gate


def read_code(public_keys: Mapping[str, Ed25519PublicKey], code: str,
              event_id: int) -> tuple[str, int | None] | Result:
    """(ticket number, generation or None when typed by hand) of a scanned or typed `code` of
    `event_id`; or the answer the code earns without any lookup: `forged` (bad signature, a key
    that is not ours) or `wrong_event`. Invalid (422) when it is neither a payload nor a ticket
    number (empty, garbage)."""
    text = code.strip() if isinstance(code, str) else ""
    if text.upper().startswith("TKT-"):
        match = _NUMBER.fullmatch(text.upper())
        if match is None:
            raise Invalid("that is not a ticket number", code="not_a_ticket",
                          fields={"code": "not a ticket number"})
        if int(match[1]) != event_id:
            return "wrong_event"
        return text.upper(), None
    try:
        claims = verify_ticket(public_keys, text)
    except MalformedTicket:
        raise Invalid("that is not a Kwika ticket", code="not_a_ticket",
                      fields={"code": "not a ticket code"}) from None
    except InvalidTicket:  # unknown key, bad signature: not made by us
        return "forged"
    if claims.event_id != event_id:
        return "wrong_event"
    return claims.ticket_number, claims.generation


class GateDesk:
    """The check-in scripts of one Redis, run through a (batching) `ScriptRunner`."""

    def __init__(self, client: redis.Redis, keys: Keys, runner: ScriptRunner | None = None):
        self.client, self.keys = client, keys
        self.runner = runner or ScriptRunner(client)
        self._scripts = {n: load_script(n) for n in ("checkin", "checkin_undo", "checkin_sync")}
        self._known: set[int] = set()

    def event_keys(self, event_id: int) -> tuple[str, str, str]:
        return (self.keys.event(event_id, "tickets"), self.keys.event(event_id, "checkin:counts"),
                self.keys.event(event_id, "checkins"))

    async def _announce(self, event_id: int, fresh: bool = False) -> None:
        """Tell the check-in writer this event has a stream: once per process per event, and
        again whenever a script's entry made the stream (`fresh`: Redis lost it, and maybe the
        index too, e.g. restored from an older copy)."""
        if fresh or event_id not in self._known:
            await self.client.sadd(self.keys.checkin_events(), event_id)
            self._known.add(event_id)

    async def check_in(self, event_id: int, number: str, generation: int | None, gate: str,
                       who: str) -> Scan:
        """Check `number` in at `gate` (see the module docstring for the answers)."""
        await self._announce(event_id)
        raw = await self.runner.run(self._scripts["checkin"], self.event_keys(event_id), (
            number, "" if generation is None else generation, check_gate(gate), who, REPEAT_MS))
        scan = msgspec.json.decode(raw, type=Scan)
        if scan.fresh:
            await self._announce(event_id, fresh=True)
        return scan

    async def undo(self, event_id: int, number: str, who: str) -> Undo:
        """Take a check-in back: `undone`, `not_used` or `unknown`."""
        await self._announce(event_id)
        raw = await self.runner.run(self._scripts["checkin_undo"], self.event_keys(event_id),
                                    (number, who))
        undo = msgspec.json.decode(raw, type=Undo)
        if undo.fresh:
            await self._announce(event_id, fresh=True)
        return undo

    async def sync(self, public_keys: Mapping[str, Ed25519PublicKey], event_id: int,
                   items: list[SyncItem], gate: str, who: str) -> list[Synced]:
        """Check-ins an offline gate made (first scan wins; checkin_sync.lua). Codes are read as
        at a scan: one that is not a ticket at all is a 422 for the whole batch (nothing
        written); a forgery or another event's ticket is reported for that item alone."""
        gate = check_gate(gate)
        if not 1 <= len(items) <= MAX_SYNC:
            raise Invalid(f"send 1 to {MAX_SYNC} check-ins at a time", fields={"items": "count"})
        if len({i.id for i in items}) != len(items):
            raise Invalid("each check-in needs its own id", fields={"items": "duplicate id"})
        sent, early = [], []
        for n, item in enumerate(items):
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", item.id) or not 1 <= item.at < 10**14:
                raise Invalid("a check-in has an id (1-64 of A-Z a-z 0-9 _ -) and a time in ms",
                              fields={f"items[{n}]": "invalid"})
            read = read_code(public_keys, item.code, event_id)
            if read in ("forged", "wrong_event"):  # nothing to write; reported to the gate
                early.append(Synced(id=item.id, r=read))  # type: ignore[arg-type]
                continue
            number, generation = read  # type: ignore[misc]
            sent.append({"id": item.id, "t": number, "g": generation, "at": item.at})
        if not sent:
            return early
        await self._announce(event_id)
        raw = await self.runner.run(self._scripts["checkin_sync"], self.event_keys(event_id),
                                    (gate, who, msgspec.json.encode(sent)))
        reply = msgspec.json.decode(raw, type=_SyncReply)
        if reply.fresh:
            await self._announce(event_id, fresh=True)
        return early + reply.results

    async def counts(self, event_id: int) -> dict[str, int]:
        """Checked in: {"in": total, "g:<gate>": per gate}."""
        raw = await self.client.hgetall(self.event_keys(event_id)[1])
        return {k.decode(): int(v) for k, v in raw.items()}

    async def close(self) -> None:
        await self.runner.close()
