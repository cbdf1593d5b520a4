"""WaitingRoom: an event's queue, admission and passes in Redis, only through the room scripts
(scripts/lua/room_*.lua; their keys are Keys.room). Every operation is O(log N) in the number of
visitors queued: a join is one ZADD, a position one ZRANK, a tick pops from the head."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Literal

import msgspec

from engine.inventory import Hold
from engine.keys import Keys
from engine.lua import ScriptRunner, load_script
from engine.room.store import RoomSettings
from engine.room.tokens import random_score

SCRIPTS = ("room_configure", "room_tick", "room_status", "room_join", "room_pass_check",
           "room_pass_use")
State = Literal["off", "unconfigured", "not_on_sale", "before_release", "open", "paused",
                "sold_out", "all_held", "all_offered", "bad_input"]
Place = Literal["none", "queued", "prequeue", "admitted", "used"]


class RoomFigures(msgspec.Struct, kw_only=True):
    """The room as a whole, and (from `status`) one visitor's place in it."""

    state: State
    now: int = 0  # Redis TIME, ms
    rate: float = 0
    paused: bool = False
    release: int = 0  # ms, 0: none
    queued: int = 0
    live_passes: int = 0
    admitted: int = 0  # passes given, ever
    used: int = 0
    expired: int = 0
    difficulty: int = 0
    available: int = 0
    held: int = 0
    admitted_now: int = 0  # by this tick
    place: Place = "none"
    ahead: int | None = None
    pass_: int | None = msgspec.field(default=None, name="pass")
    expires: int | None = None
    hold: str | None = None

    def wait_seconds(self) -> float | None:
        """Estimated seconds until this visitor (or, without a place, the whole queue) is through,
        at the set rate; None when the room admits nobody for now."""
        if self.state != "open" or self.rate <= 0:
            return None
        ahead = self.ahead if self.ahead is not None else self.queued
        return ahead / self.rate


class JoinResult(msgspec.Struct, kw_only=True):
    ok: bool
    place: Place = "none"
    ahead: int | None = None
    again: bool = False  # the visitor had this place already
    reason: str | None = None
    retry_after_ms: int | None = None


_figures = msgspec.json.Decoder(RoomFigures)
_join = msgspec.json.Decoder(JoinResult)


def _ms(value: datetime | None) -> int:
    """A release time in ms; one before 1970 is as long past as 0 (none), which the room takes."""
    return max(0, int(value.timestamp() * 1000)) if value else 0


class WaitingRoom:
    def __init__(self, runner: ScriptRunner, keys: Keys):
        self.runner = runner
        self.keys = keys
        self.scripts = {name: load_script(name) for name in SCRIPTS}

    async def _run(self, name: str, event_id: int, *args, extra: tuple[str, ...] = ()):
        return await self.runner.run(self.scripts[name], self.keys.room(event_id), args,
                                     extra_keys=extra)

    async def configure(self, event_id: int, room: RoomSettings) -> None:
        """Copy the provider's settings into Redis (and the set of rooms the ticks run)."""
        answer = await self._run("room_configure", event_id, int(room.enabled),
                                 f"{room.rate_per_second:.4f}", int(room.paused),
                                 _ms(room.effective_release_at), room.pass_seconds * 1000,
                                 room.difficulty)
        if answer != b"ok":
            raise ValueError(f"room settings refused: {answer!r}")
        client = self.runner.client
        if room.enabled:
            await client.sadd(self.keys.rooms_on(), event_id)
        else:
            await client.srem(self.keys.rooms_on(), event_id)

    async def tick(self, event_id: int) -> RoomFigures:
        """One admission tick (safe from any number of processes at once), with the figures."""
        return _figures.decode(await self._run("room_tick", event_id))

    async def status(self, event_id: int, buyer: str) -> RoomFigures:
        """`buyer`'s place after a tick (a position read moves the line on too)."""
        return _figures.decode(await self._run("room_status", event_id, buyer))

    async def join(self, event_id: int, buyer: str, nonce: str, expires_ms: int, client: str,
                   per_minute: int, score: int | None = None, spacing: int = 0) -> JoinResult:
        """One place for `buyer` (their old one when they have one). The proof of work must have
        been checked; its `nonce` is accepted once. `per_minute` joins per client address (0:
        no limit). `score`: the pre-queue draw, random unless a test gives one. `spacing`: an
        address's n-th place goes behind everyone's (n-1)-th (pre-queue) or behind the next
        (n-1) * spacing arrivals (after the release); 0: every place is ranked alone."""
        draw = random_score() if score is None else score
        return _join.decode(await self._run(
            "room_join", event_id, buyer, draw, nonce, expires_ms, per_minute, per_minute,
            spacing, extra=(self.keys.room_joins(event_id, client),
                            self.keys.room_places(event_id, client))))

    async def check_pass(self, event_id: int, buyer: str, number: int, hold_id: str = "") -> str:
        """'ok' when the pass may make a basket now (or, with `hold_id`, stands for that basket),
        else why not: 'pass_expired', 'pass_replaced', 'pass_used', 'bad_input'."""
        return (await self._run("room_pass_check", event_id, buyer, number, hold_id)).decode()

    async def use_pass(self, event_id: int, buyer: str, number: int, hold: Hold) -> str:
        """Record that the pass made basket `hold`: 'ok', 'again' (it had), or a refusal
        ('pass_used' too when a hold of that id was made again after it was given back)."""
        made = round(hold.created_at.timestamp() * 1000)
        return (await self._run("room_pass_use", event_id, buyer, number, hold.id, made)).decode()

    async def joins_per_second(self, event_id: int) -> int:
        """Joins in the last whole second (or this one so far, if more): a plain read."""
        jsec, jn, jlast = await self.runner.client.hmget(
            self.keys.room(event_id)[0], "jsec", "jn", "jlast")
        second = int(time.time())
        if not jsec or int(jsec) < second - 1:
            return 0
        return max(int(jn or 0), int(jlast or 0) if int(jsec) == second else 0)

    async def rooms_on(self) -> list[int]:
        return sorted(int(x) for x in await self.runner.client.smembers(self.keys.rooms_on()))
