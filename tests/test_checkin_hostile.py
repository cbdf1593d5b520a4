"""Hostile arguments straight into the check-in scripts (checkin, checkin_undo, checkin_sync),
past the engine's own checks: a call that fails writes nothing at all, and whatever is sent the
gate's books agree afterwards: the count checked in is the number of used tickets, the gates'
counts add up to it, every used ticket says when and where, and nothing counts below zero."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import redis.asyncio as redis
from hypothesis import given
from hypothesis import strategies as st
from redis.exceptions import ResponseError

from engine.checkin.desk import GateDesk
from engine.keys import Keys
from tests.test_scripts_hostile import HYPOTHESIS, json_junk, junk, maybe, number

EVENT = 77
TICKETS = [f"TKT-{EVENT}-AAAA{n:04d}" for n in range(4)]
SEED = {
    TICKETS[0]: {"s": "valid", "g": 1, "p": 7, "seat": None, "n": "Ann"},
    TICKETS[1]: {"s": "valid", "g": 2, "p": 7, "seat": 3, "n": "Ben"},
    TICKETS[2]: {"s": "used", "g": 1, "p": 7, "seat": None, "n": "Cat", "at": 1000, "gate": "A",
                 "by": "u:1"},
    TICKETS[3]: {"s": "refunded", "g": 1, "p": 7, "seat": None, "n": "Dee"},
}


class Gate:
    def __init__(self, url: str):
        self.loop = asyncio.new_event_loop()
        self.client = redis.Redis.from_url(url)
        self.desk = GateDesk(self.client, Keys(f"kwc{uuid.uuid4().hex[:8]}"))
        self.keys = self.desk.event_keys(EVENT)

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    async def reset(self) -> None:
        await self.client.delete(*self.keys)
        await self.client.hset(self.keys[0], mapping={k: json.dumps(v) for k, v in SEED.items()})
        await self.client.hset(self.keys[1], mapping={"in": 1, "g:A": 1})

    async def snapshot(self) -> dict:
        return {k: await self.client.dump(k) for k in self.keys}

    async def check_books(self) -> None:
        register = {k.decode(): json.loads(v)
                    for k, v in (await self.client.hgetall(self.keys[0])).items()}
        counts = {k.decode(): int(v) for k, v in (await self.client.hgetall(self.keys[1])).items()}
        used = [e for e in register.values() if e["s"] == "used"]
        assert counts.get("in", 0) == len(used), (counts, register)
        assert sum(v for k, v in counts.items() if k.startswith("g:")) == counts.get("in", 0)
        assert all(v >= 0 for v in counts.values()), counts
        for e in used:
            assert isinstance(e.get("at"), int) and e["at"] > 0 and e.get("gate"), e
            assert counts.get(f"g:{e['gate']}", 0) >= 1, (e, counts)
        assert set(register) == set(SEED)

    def call(self, name: str, *args) -> None:
        async def go():
            await self.reset()
            before = await self.snapshot()
            try:
                await self.desk.runner.run(self.desk._scripts[name], self.keys, args)
            except ResponseError:
                assert await self.snapshot() == before, (name, args)
            except TypeError:
                return  # an argument the runner cannot send: nothing reached Redis
            await self.check_books()
        self.run(go())

    def close(self) -> None:
        self.run(self.client.delete(*self.keys))
        self.run(self.desk.close())
        self.run(self.client.aclose())
        self.loop.close()


@pytest.fixture(scope="module")
def gate(services):
    g = Gate(services.redis_url)
    yield g
    g.close()


tickets = st.sampled_from(TICKETS + [f"TKT-{EVENT}-NONE0000"])
gates = st.sampled_from(["A", "B", "Gate 7"])
who = st.sampled_from(["u:1", "u:42"])


@HYPOTHESIS
@given(data=st.data())
def test_checkin_survives_anything(gate, data):
    gate.call("checkin", data.draw(maybe(tickets)),
              data.draw(maybe(st.sampled_from(["", "1", "2", "3"]))), data.draw(maybe(gates)),
              data.draw(maybe(who)), data.draw(maybe(st.sampled_from(["30000", "0"]))))


@HYPOTHESIS
@given(data=st.data())
def test_checkin_undo_survives_anything(gate, data):
    gate.call("checkin_undo", data.draw(maybe(tickets)), data.draw(maybe(who)))


@HYPOTHESIS
@given(data=st.data())
def test_checkin_sync_survives_anything(gate, data):
    item = st.fixed_dictionaries({
        "id": maybe(st.sampled_from(["a", "b", "c-1"]), number),
        "t": maybe(tickets, number),
        "g": maybe(st.sampled_from([None, 1, 2]), number),
        "at": maybe(st.sampled_from([1, 500, 5000, 10**13]), number)})
    items = data.draw(maybe(st.lists(item, max_size=5).map(json.dumps),
                            junk | json_junk.map(json.dumps)))
    gate.call("checkin_sync", data.draw(maybe(gates)), data.draw(maybe(who)), items)
