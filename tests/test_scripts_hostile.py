"""Hostile arguments straight into every inventory script, past the engine's own checks: the
scripts validate everything before their first write, so whatever they are sent the books still
balance afterwards (hypothesis; engine.audit after every call), and a call that fails (an error
from Redis, or a `bad_input` refusal) has changed nothing at all."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import redis.asyncio as redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.exceptions import ResponseError

from engine.inventory import Inventory
from engine.keys import Keys
from tests.inventory_helpers import check_invariants, event, package, seat_map

json_junk = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5),
    max_leaves=20)
number = (st.integers(-5, 2**60) | st.floats(allow_nan=False, allow_infinity=False)
          | st.text(max_size=4) | st.none() | st.booleans())
# quantities that look almost right: what a buggy or hostile caller sends
quantity = st.integers(1, 3) | st.sampled_from([0, -1, 1.5, 0.5, 2.0000001, 1e20, "2", True]) | number
junk = (st.text(max_size=40) | st.integers(-(2**70), 2**70).map(str) | json_junk.map(json.dumps)
        | st.sampled_from(["", "1e400", "-0", "nan", "0x10", " 1", "1.5", "H1-x", "u:a|b"]))


def maybe(valid, hostile=junk):
    """Mostly (7 times in 8) a value of the right shape, sometimes anything at all: with many
    arguments per call, the hostile one must often be the only one."""
    return st.integers(0, 7).flatmap(lambda n: hostile if n == 0 else valid)


class World:
    """A loaded event with a live hold and a sale; `fresh()` makes a new one for each example,
    so every example meets stock to take."""

    def __init__(self, url: str):
        self.loop = asyncio.new_event_loop()
        self.client = redis.Redis.from_url(url)
        self.prefix = f"kwx{uuid.uuid4().hex[:8]}"
        self.inv = Inventory(self.client, Keys(self.prefix))
        self.fresh()

    def fresh(self) -> World:
        self.event = event(seated=True, buyer_cap=6)
        self.ga = package(self.event.id, capacity=20, per_buyer_limit=5)
        self.ga2 = package(self.event.id, capacity=20)
        self.seated = package(self.event.id, capacity=0)
        self.smap = seat_map(self.event.id, self.seated.id, 8)
        self.seats = [s.id for s in self.smap.sections[0].seats]
        self.run(self.inv.load(self.event, [self.ga, self.ga2, self.seated], self.smap))
        self.hold = self.run(self.inv.hold(self.event.id, "u:ann", {self.ga.id: 2}, [self.seats[0]]))
        sold = self.run(self.inv.hold(self.event.id, "u:ben", {self.ga.id: 1}))
        self.run(self.inv.confirm(self.event.id, sold, "ORD-1"))
        return self

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    async def snapshot(self, keys) -> dict:
        return {k: await self.client.dump(k) for k in keys}

    def call(self, name: str, *args, extra_keys=()):
        async def go():
            keys = self.inv.event_keys(self.event.id) + tuple(extra_keys)
            before = await self.snapshot(keys)
            failed = False
            try:
                raw = await self.inv.runner.run(self.inv.scripts[name],
                                                self.inv.event_keys(self.event.id), args,
                                                extra_keys=extra_keys)
                failed = isinstance(raw, bytes) and b'"bad_input"' in raw
            except ResponseError:
                failed = True  # the script stopped with an error: it must not have written
            except TypeError:
                return  # an argument the runner cannot send: nothing reached Redis
            if failed:
                assert await self.snapshot(keys) == before, (name, args)
            await check_invariants(self.inv, self.event.id)
        self.run(go())

    def close(self):
        async def clean():
            keys = [k async for k in self.client.scan_iter(match=f"{self.prefix}:*")]
            if keys:
                await self.client.delete(*keys)
            await self.inv.close()
            await self.client.aclose()
        self.run(clean())
        self.loop.close()


@pytest.fixture(scope="module")
def world(services):
    w = World(services.redis_url)
    yield w
    w.close()


HYPOTHESIS = settings(max_examples=200, deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@HYPOTHESIS
@given(data=st.data())
def test_hold_survives_anything(world, data):
    w = world.fresh()
    hold_id = data.draw(maybe(st.sampled_from([w.hold.id, f"H{w.event.id}-new1", f"H{w.event.id}-new2"])))
    buyer = data.draw(maybe(st.sampled_from(["u:ann", "u:cat", "g:dan"])))
    selection = data.draw(maybe(st.fixed_dictionaries({
        "ga": st.tuples(quantity, quantity).map(lambda q: [[w.ga.id, q[0]], [w.ga2.id, q[1]]])
              | st.lists(st.tuples(st.sampled_from([w.ga.id, w.ga2.id]), quantity).map(list),
                         max_size=3)
              | st.lists(st.lists(maybe(st.sampled_from([w.ga.id, w.ga2.id, w.seated.id, 999]),
                                        number), max_size=3), max_size=60) | json_junk,
        "seats": st.lists(maybe(st.sampled_from(w.seats), number), max_size=110) | json_junk,
    }).map(json.dumps)))
    limits = data.draw(maybe(
        st.sampled_from(["0 1 0 1 0 1", "50 60 500 600 5 5", "1 1 1 1 1 1"]),
        st.lists(number, max_size=7).map(lambda ns: " ".join(map(str, ns))) | junk))
    args = [hold_id, buyer, data.draw(maybe(st.sampled_from(["900000", "1000"]))),
            selection, data.draw(maybe(st.sampled_from(["0", "20"]))), limits,
            data.draw(maybe(st.sampled_from(["1.2.3.4", "2001:db8::/64", "x" * 100]))),
            data.draw(maybe(st.sampled_from(["0", "1"])))]
    w.call("hold", *args)


@HYPOTHESIS
@given(data=st.data())
def test_confirm_release_unsell_survive_anything(world, data):
    w = world.fresh()
    hold_id = data.draw(maybe(st.sampled_from([w.hold.id, f"H{w.event.id}-gone"])))
    buyer = data.draw(maybe(st.sampled_from(["u:ann", "u:ben"])))
    order = data.draw(maybe(st.sampled_from(["ORD-1", "ORD-2", "ORD-3"])))
    fallback = data.draw(maybe(st.fixed_dictionaries({
        "ga": st.tuples(quantity, quantity).map(
                  lambda q: [[w.ga.id, q[0], 1000], [w.ga2.id, q[1], 1000]])
              | st.lists(st.tuples(st.sampled_from([w.ga.id, w.ga2.id]), quantity,
                                   st.just(1000)).map(list), max_size=3)
              | st.lists(st.lists(number, max_size=4), max_size=60) | json_junk,
        "seats": st.lists(st.sampled_from(w.seats[1:]).map(lambda sid: [sid, w.seated.id, 1000]),
                          max_size=2, unique_by=lambda seat: seat[0])
                 | st.lists(st.lists(maybe(st.sampled_from(w.seats), number), max_size=4),
                            max_size=110) | json_junk,
    }).map(json.dumps)))
    extra = data.draw(maybe(st.just("{}")))
    which = data.draw(st.sampled_from(["confirm", "release", "unsell", "expire", "get_hold"]))
    draft_key = (w.inv.keys.draft(w.event.id, w.hold.id),)
    if which == "confirm":
        w.call("confirm", hold_id, order, buyer, fallback, extra)
    elif which == "release":
        w.call("release", hold_id, buyer, extra_keys=draft_key)
    elif which == "unsell":
        w.call("unsell", order, data.draw(maybe(st.sampled_from(["0", "1"]))))
    elif which == "expire":
        w.call("expire", data.draw(maybe(st.sampled_from(["1", "1000"]))))
    else:
        w.call("get_hold", hold_id, buyer)


@HYPOTHESIS
@given(data=st.data())
def test_load_stock_survives_anything(world, data):
    w = world.fresh()
    pkg = st.fixed_dictionaries({
        "id": maybe(st.sampled_from([w.ga.id, w.ga2.id, w.seated.id]), number),
        "capacity": maybe(st.integers(0, 40), quantity), "sold": maybe(st.just(0), number),
        "price": maybe(st.just(1000), number), "min": maybe(st.just(1), number),
        "max": maybe(st.just(10), number), "limit": maybe(st.just(0), number),
        "opens": maybe(st.just(0), number), "closes": maybe(st.just(0), number),
        "active": maybe(st.just(1), number), "seated": maybe(st.sampled_from([0, 1]), number)})
    seat = st.fixed_dictionaries({
        "id": maybe(st.sampled_from(w.seats), number),
        "p": maybe(st.just(w.seated.id), number), "price": maybe(st.just(1000), number),
        "state": maybe(st.sampled_from(["available", "blocked", "sold"]), number)})
    payload = data.draw(maybe(st.fixed_dictionaries({
        "mode": maybe(st.sampled_from(["narrow", "full"]), number),
        "version": maybe(st.integers(0, 9), number), "final": maybe(st.booleans(), number),
        "status": maybe(st.sampled_from(["on_sale", "paused", "closed"]), number),
        "currency": maybe(st.just("MWK"), number), "guests": maybe(st.sampled_from([0, 1]), number),
        "buyer_cap": maybe(st.integers(0, 10), number),
        "packages": st.lists(pkg, max_size=3) | json_junk,
        "seats": st.lists(seat, max_size=9) | json_junk,
    }).map(json.dumps)))
    w.call("load_stock", payload, extra_keys=w.inv.layout_keys(w.event.id))


@HYPOTHESIS
@given(data=st.data())
def test_best_available_survives_anything(world, data):
    w = world.fresh()
    request = data.draw(maybe(st.fixed_dictionaries({
        "quantity": maybe(st.integers(1, 9), quantity),
        "section": maybe(st.sampled_from([0, w.smap.sections[0].id, 999]), number),
        "price_min": maybe(st.sampled_from([0, 500, 1000]), number),
        "price_max": maybe(st.sampled_from([0, 1000, 5000]), number)}).map(json.dumps)))
    args = [data.draw(maybe(st.sampled_from([f"H{w.event.id}-best1", w.hold.id]))),
            data.draw(maybe(st.sampled_from(["u:cat", "g:dan", "u:ann"]))), "900000", request, "20",
            data.draw(maybe(st.just("0 1 0 1 1 1"))), data.draw(maybe(st.just("1.2.3.4"))),
            data.draw(maybe(st.sampled_from(["0", "1"])))]
    w.call("best_available", *args, extra_keys=w.inv.layout_keys(w.event.id))


@HYPOTHESIS
@given(data=st.data())
def test_order_draft_scripts_survive_anything(world, data):
    w = world.fresh()
    w.inv.add_script("checkout")
    w.inv.add_script("begin_payment")
    w.inv.add_script("payment_update")
    w.inv.add_script("cancel_order")
    w.inv.add_script("extend")
    hold_id = data.draw(maybe(st.sampled_from([w.hold.id, f"H{w.event.id}-none"])))
    buyer = data.draw(maybe(st.sampled_from(["u:ann", "u:ben"])))
    draft_key = (w.inv.keys.draft(w.event.id, w.hold.id),)
    person = st.fixed_dictionaries({"name": st.text(max_size=5), "email": st.text(max_size=5)})
    which = data.draw(st.sampled_from(["checkout", "begin_payment", "payment_update", "cancel_order",
                                       "extend"]))
    if which == "checkout":
        payload = data.draw(maybe(st.fixed_dictionaries({
            "order": maybe(st.just("ORD-1-AB"), number),
            "attendees": st.lists(person, min_size=3, max_size=3) | st.lists(person, max_size=4) | json_junk,
            "billing": maybe(person, number), "fee": maybe(st.sampled_from([0, 100]), quantity),
            "currency": maybe(st.just("MWK"), number)}).map(json.dumps)))
        w.call("checkout", hold_id, buyer, payload, data.draw(maybe(st.just("3600"))), extra_keys=draft_key)
    elif which == "begin_payment":
        attempt = data.draw(maybe(st.fixed_dictionaries({
            "reference": maybe(st.just("ORD-1-AB-01"), number), "gateway": maybe(st.just("sandbox"), number),
            "method": maybe(st.just("card"), number)}).map(json.dumps)))
        w.call("begin_payment", hold_id, buyer, attempt, data.draw(maybe(st.just("60000"))),
               extra_keys=draft_key)
    elif which == "payment_update":
        update = data.draw(maybe(st.fixed_dictionaries({
            "state": maybe(st.sampled_from(["pending", "succeeded", "failed", "starting"]), number),
            "order_status": st.sampled_from(["paid", "refund_due", "x"]) | json_junk}).map(json.dumps)))
        w.call("payment_update", data.draw(maybe(st.just("ORD-1-AB-01"))), update, extra_keys=draft_key)
    elif which == "cancel_order":
        w.call("cancel_order", hold_id, buyer, extra_keys=draft_key)
    else:
        w.call("extend", hold_id, buyer, data.draw(maybe(st.sampled_from(["60000", "0"]))),
               data.draw(maybe(st.sampled_from(["1800000", "1"]))))


RANK = {"valid": 1, "used": 2, "cancelled": 3, "refunded": 3, "revoked": 3}


@HYPOTHESIS
@given(data=st.data())
def test_register_tickets_survives_anything_and_never_goes_back(world, data):
    """The gate register (register_tickets.lua): whatever it is sent, a failed call writes
    nothing, and no ticket ever goes to a lower generation, a lower status, or loses a field."""
    from engine.tickets.gate import _SCRIPT

    w = world
    key = f"{w.prefix}:{{gate}}:tickets"
    seeded = {"T1": {"s": "valid", "g": 2, "p": 7, "seat": None, "n": "Ann"},
              "T2": {"s": "used", "g": 1, "p": 7, "seat": 3, "n": "Ben", "at": "x"},
              "T3": {"s": "revoked", "g": 1, "p": 7, "seat": None, "n": "Cat"}}

    async def go():
        await w.client.delete(key)
        await w.client.hset(key, mapping={k: json.dumps(v) for k, v in seeded.items()})
        script = w.client.register_script(_SCRIPT.source)
        entry = st.fixed_dictionaries({
            "s": maybe(st.sampled_from(list(RANK)), number), "g": maybe(st.integers(1, 4), quantity),
            "p": maybe(st.just(7), number), "seat": maybe(st.sampled_from([None, 3]), number),
            "n": maybe(st.sampled_from(["Ann", "Dee"]), number)}).map(json.dumps)
        pairs = data.draw(st.lists(st.tuples(maybe(st.sampled_from(["T1", "T2", "T3", "T4"])),
                                             maybe(entry)), max_size=6))
        args = [x for pair in pairs for x in pair]
        if data.draw(st.integers(0, 7)) == 0:
            args = args[:-1]  # an odd count
        before = await w.client.hgetall(key)
        try:
            await script(keys=[key], args=args)
        except ResponseError:
            assert await w.client.hgetall(key) == before, args
        after = {k.decode(): json.loads(v) for k, v in (await w.client.hgetall(key)).items()}
        for ticket, old in seeded.items():
            new = after[ticket]
            assert new["g"] >= old["g"] and RANK[new["s"]] >= RANK[old["s"]], (old, new, args)
            assert set(old) <= set(new), (old, new)
        await w.client.delete(key)

    w.run(go())
