"""Hostile arguments straight into the waiting room's scripts, past WaitingRoom's own checks:
each validates everything before its first write, so a call refused as `bad_input` (or stopped
with an error) has changed nothing, and whatever the scripts are sent, nobody is admitted twice
and the room's counters stay consistent."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis.asyncio as redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.exceptions import ResponseError

from engine.inventory import Inventory
from engine.keys import Keys
from engine.room import RoomSettings, WaitingRoom
from tests.inventory_helpers import event, package

junk = (st.text(max_size=30) | st.integers(-(2**70), 2**70).map(str)
        | st.sampled_from(["", "1e400", "-0", "nan", "inf", "-inf", "0x10", " 1", "1.5", "1e5",
                           "4503599627370496", "g:a|used|x", "ab" * 40, "%d", "{ev:1}"]))


def maybe(valid):
    return st.integers(0, 5).flatmap(lambda n: junk if n == 0 else valid)


class Room:
    def __init__(self, url: str):
        self.loop = asyncio.new_event_loop()
        self.client = redis.Redis.from_url(url)
        self.keys = Keys(f"kwh{uuid.uuid4().hex[:8]}")
        self.inv = Inventory(self.client, self.keys)
        self.room = WaitingRoom(self.inv.runner, self.keys)
        ev = event()
        self.event_id = ev.id
        self.run(self.inv.load(ev, [package(ev.id, capacity=50)], None))
        self.run(self.room.configure(ev.id, RoomSettings(enabled=True, rate_per_second=5)))
        for i in range(5):
            self.run(self.room.join(ev.id, f"g:v{i}", uuid.uuid4().hex, int(time.time() * 1000)
                                    + 60_000, "1.1.1.1", 0))
        self.run(self.room.tick(ev.id))

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def call(self, name: str, args: list, extra: tuple[str, ...] = ()) -> None:
        async def go():
            keys = self.keys.room(self.event_id) + extra
            before = {k: await self.client.dump(k) for k in keys}
            ttl = {k: await self.client.pttl(k) for k in keys}
            failed = False
            try:
                raw = await self.inv.runner.run(self.room.scripts[name], keys, tuple(args))
                failed = isinstance(raw, bytes) and b"bad_input" in raw
            except ResponseError:
                failed = True
            if failed:
                after = {k: await self.client.dump(k) for k in keys}
                for k in keys:  # a key whose time ran out meanwhile was not written
                    if after[k] is None and ttl[k] > 0:
                        after[k] = before[k]
                assert after == before, (name, args)
            await self.consistent()
        self.run(go())

    async def consistent(self) -> None:
        """Every live pass is an admitted visitor's; nobody is both admitted (live) and queued;
        pass numbers are distinct and within what was issued."""
        room, queue, passes, admitted = self.keys.room(self.event_id)[:4]
        records = await self.client.hgetall(admitted)
        live = {b for b, v in records.items() if b"|used|" not in v}
        in_passes = set(await self.client.zrange(passes, 0, -1))
        assert in_passes <= set(records)
        queued = set(await self.client.zrange(queue, 0, -1))
        assert not (live & queued)
        numbers = [int(v.split(b"|")[0]) for v in records.values()]
        assert len(numbers) == len(set(numbers))
        assert max(numbers, default=0) <= int(await self.client.hget(room, "issued") or 0)

    def close(self):
        async def clean():
            found = [k async for k in self.client.scan_iter(match=f"{self.keys.prefix}:*")]
            if found:
                await self.client.delete(*found)
            await self.inv.close()
            await self.client.aclose()
        self.run(clean())
        self.loop.close()


@pytest.fixture(scope="module")
def hostile(services):
    r = Room(services.redis_url)
    yield r
    r.close()


HYPOTHESIS = settings(max_examples=150, deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture,
                                             HealthCheck.too_slow])
buyers = st.sampled_from(["g:v0", "g:v1", "g:v3", "g:new", "u:7"])


@HYPOTHESIS
@given(data=st.data())
def test_join_survives_anything(hostile, data):
    args = [data.draw(maybe(buyers)), data.draw(maybe(st.integers(0, 2**52 - 1).map(str))),
            data.draw(maybe(st.binary(min_size=8, max_size=32).map(bytes.hex))),
            data.draw(maybe(st.just(str(int(time.time() * 1000) + 60_000)))),
            data.draw(maybe(st.sampled_from(["0", "5"]))), data.draw(maybe(st.sampled_from(["0", "5"]))),
            data.draw(maybe(st.sampled_from(["0", "3", "100"])))]
    args = args[:data.draw(st.sampled_from([7, 7, 7, 6, 8, 0]))]
    hostile.call("room_join", args, (hostile.keys.room_joins(hostile.event_id, "9.9.9.9"),
                                     hostile.keys.room_places(hostile.event_id, "9.9.9.9")))


@HYPOTHESIS
@given(data=st.data())
def test_pass_scripts_survive_anything(hostile, data):
    name = data.draw(st.sampled_from(["room_pass_check", "room_pass_use"]))
    args = [data.draw(maybe(buyers)), data.draw(maybe(st.integers(1, 8).map(str))),
            data.draw(maybe(st.sampled_from(["", "H1-abc", "H1-def"])))]
    if name == "room_pass_use":
        args.append(data.draw(maybe(st.sampled_from(["1700000000000", "1700000000001"]))))
    count = data.draw(st.sampled_from([len(args)] * 3 + [len(args) - 1, len(args) + 1]))
    args = args[:count] + ["x"] * (count - len(args))
    hostile.call(name, args)


@HYPOTHESIS
@given(data=st.data())
def test_configure_status_and_tick_survive_anything(hostile, data):
    name = data.draw(st.sampled_from(["room_configure", "room_status", "room_tick"]))
    if name == "room_configure":
        args = [data.draw(maybe(st.sampled_from(["0", "1"]))),
                data.draw(maybe(st.sampled_from(["0.5", "5", "100000"]))),
                data.draw(maybe(st.sampled_from(["0", "1"]))), data.draw(maybe(st.just("0"))),
                data.draw(maybe(st.just("60000"))), data.draw(maybe(st.sampled_from(["0", "14"])))]
    else:
        args = [data.draw(maybe(buyers))] if name == "room_status" else []
    hostile.call(name, args)
    hostile.run(hostile.room.configure(hostile.event_id,
                                       RoomSettings(enabled=True, rate_per_second=5)))
