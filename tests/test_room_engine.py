"""The waiting room in Redis (scripts/lua/room_*.lua through engine.room.WaitingRoom): one place
per buyer, a shuffled pre-queue ahead of a first-come line, admission at the rate and within the
stock, atomic under concurrent ticks, passes used once."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import pytest
import redis.asyncio as redis

from engine.inventory import Inventory
from engine.keys import Keys
from engine.lua import ScriptRunner
from engine.room import WaitingRoom
from tests.room_helpers import configure, join, room_event


@pytest.fixture
async def parts(services):
    client = redis.Redis.from_url(services.redis_url, max_connections=50)
    keys = Keys(f"kwr{uuid.uuid4().hex[:8]}")
    inv = Inventory(client, keys)
    room = WaitingRoom(inv.runner, keys)
    yield inv, room
    await inv.close()
    async for key in client.scan_iter(match=f"{keys.prefix}:*", count=1000):
        await client.delete(key)
    await client.aclose()


def spearman(xs: list[float], ys: list[float]) -> float:
    def ranks(v):
        order = sorted(range(len(v)), key=v.__getitem__)
        r = [0] * len(v)
        for i, j in enumerate(order):
            r[j] = i
        return r
    rx, ry = ranks(xs), ranks(ys)
    n = len(xs)
    d2 = sum((a - b) ** 2 for a, b in zip(rx, ry))
    return 1 - 6 * d2 / (n * (n * n - 1))


async def test_one_place_per_buyer(parts):
    inv, room = parts
    event_id, _ = await room_event(inv, room, rate=0.01)
    first = await join(room, event_id, "g:alice")
    second = await join(room, event_id, "g:alice")
    assert first.ok and first.place == "queued" and first.ahead == 0
    assert second.ok and second.again and second.ahead == 0
    await join(room, event_id, "g:bob")
    await join(room, event_id, "g:carol")
    bob = await room.status(event_id, "g:bob")  # its tick spent the bucket's one token on alice
    assert bob.place == "queued" and bob.ahead == 0 and bob.queued == 2
    assert (await room.status(event_id, "g:alice")).place == "admitted"
    assert (await room.status(event_id, "g:carol")).ahead == 1


async def test_prequeue_is_shuffled_and_later_arrivals_are_fifo(parts):
    inv, room = parts
    event_id, _ = await room_event(inv, room, rate=0.01, release_in=3600)
    early = [f"g:early{i}" for i in range(2000)]
    for chunk in range(0, len(early), 200):
        results = await asyncio.gather(*(join(room, event_id, b) for b in early[chunk:chunk + 200]))
        assert all(r.ok and r.place == "prequeue" for r in results)
    await configure(room, event_id, rate=0.01, release_in=-1)  # the release time has come
    late = [f"g:late{i}" for i in range(200)]
    for buyer in late:  # one after the other: arrival order is this order
        assert (await join(room, event_id, buyer)).place == "queued"
    places = await asyncio.gather(*(room.status(event_id, b) for b in early + late))
    ahead = [p.ahead for p in places]
    # the first status read's tick admitted one visitor from the head (the bucket's first token)
    admitted = [b for b, p in zip(early + late, places) if p.place == "admitted"]
    assert len(admitted) == 1 and admitted[0].startswith("g:early")
    early_ahead = [a for b, a in zip(early, ahead[:2000]) if b not in admitted]
    rho = spearman(list(range(len(early_ahead))), early_ahead)
    assert abs(rho) < 0.1, rho  # independent: sd ~ 1/sqrt(n) = 0.022
    assert ahead[2000:] == list(range(1999, 2199))  # all behind the pre-queue, in arrival order


async def test_one_address_gets_one_turn_ahead_of_anyone(parts):
    """A script with many identities on one address: in the pre-queue its n-th place draws
    behind everyone's (n-1)-th, so the head of the line holds one of its places however many it
    took (concurrently, first); after the release each further place goes `spacing` arrivals
    back. People on their own addresses keep their lottery."""
    inv, room = parts
    event_id, _ = await room_event(inv, room, rate=0.01, release_in=3600)
    bots = [f"g:bot{i}" for i in range(40)]
    people = [f"g:person{i}" for i in range(200)]
    results = await asyncio.gather(*(join(room, event_id, b, client="10.6.6.6", spacing=100)
                                     for b in bots))
    results += await asyncio.gather(*(join(room, event_id, p, client=f"10.1.{i // 250}.{i % 250}",
                                            spacing=100) for i, p in enumerate(people)))
    assert all(r.ok and r.place == "prequeue" for r in results)
    ahead = {b: (await room.status(event_id, b)).ahead for b in bots + people}
    head = sorted(bots + people, key=ahead.__getitem__)[:len(people) + 1]
    assert sum(b in head for b in bots) == 1  # one bot place among the first 201, not ~33
    # the bot's places are in tiers: its k-th place is behind every person
    bot_ranks = sorted(ahead[b] for b in bots)
    assert bot_ranks[1:] == list(range(len(people) + 1, len(people) + len(bots)))
    rho = spearman(list(range(len(people))), [ahead[p] for p in people])
    assert abs(rho) < 0.25, rho  # still a lottery for people (sd ~ 0.07)

    await configure(room, event_id, rate=0.01, release_in=-1)
    order = []
    for who, client in (("g:a1", "10.7.7.7"), ("g:a2", "10.7.7.7"), ("g:x1", "10.8.0.1"),
                        ("g:x2", "10.8.0.2"), ("g:a3", "10.7.7.7"), ("g:x3", "10.8.0.3"),
                        ("g:x4", "10.8.0.4"), ("g:x5", "10.8.0.5"), ("g:x6", "10.8.0.6")):
        assert (await join(room, event_id, who, client=client, spacing=2)).place == "queued"
        order.append(who)
    later = {w: (await room.status(event_id, w)).ahead for w in order}
    # seq a1=1, a2=2+2, x1=3, x2=4, a3=5+4, x3=6, x4=7, x5=8, x6=9 (a later place goes behind
    # the arrival it waits for: no ties)
    assert sorted(order, key=later.__getitem__) == [
        "g:a1", "g:x1", "g:x2", "g:a2", "g:x3", "g:x4", "g:x5", "g:x6", "g:a3"]


async def test_without_spacing_every_place_is_ranked_alone(parts):
    inv, room = parts
    event_id, _ = await room_event(inv, room, rate=0.01)
    for i in range(5):
        await join(room, event_id, f"g:s{i}", client="10.6.6.6", spacing=0)
    await join(room, event_id, "g:other", client="10.6.6.7", spacing=0)
    # (the first status read's tick admits the head: the bucket's first token)
    assert [(await room.status(event_id, f"g:s{i}")).ahead for i in range(5)] == [None, 0, 1, 2, 3]
    assert (await room.status(event_id, "g:s0")).place == "admitted"
    assert (await room.status(event_id, "g:other")).ahead == 4


async def test_an_address_is_counted_until_a_day_after_the_release(parts):
    """The pre-queue is open from when the room is turned on until the release (by default the
    earliest opening: days, weeks). An address's count that ran out a day after its first place
    would give the address a fresh first turn, ahead of everyone's second, every day before the
    release: the count lasts until a day after the release (and still a day after the first
    place taken after it)."""
    inv, room = parts
    day = 86_400_000
    event_id, _ = await room_event(inv, room, rate=0.01, release_in=3 * 86400)
    counted = room.keys.room_places(event_id, "10.6.6.6")
    await join(room, event_id, "g:b0", client="10.6.6.6", spacing=100)
    assert await inv.client.pttl(counted) > 4 * day - 60_000
    await configure(room, event_id, rate=0.01, release_in=10 * 86400)  # the release moved later
    await join(room, event_id, "g:b1", client="10.6.6.6", spacing=100)
    assert await inv.client.pttl(counted) > 11 * day - 60_000
    assert await inv.client.get(counted) == b"2"
    await configure(room, event_id, rate=0.01, release_in=-1)
    fresh = room.keys.room_places(event_id, "10.6.6.7")
    await join(room, event_id, "g:c0", client="10.6.6.7", spacing=100)
    assert day - 60_000 < await inv.client.pttl(fresh) <= day


async def test_a_later_place_goes_behind_the_arrivals_it_waits_for_whatever_its_name(parts):
    """After the release an address's n-th place goes behind the next (n-1) * spacing arrivals
    (README): it does not tie with the last of them and win or lose on its identity's name (a
    guest `g:` would always beat an account `u:`)."""
    inv, room = parts
    event_id, _ = await room_event(inv, room, rate=0.01, release_in=-1)
    for who, client in (("g:a1", "10.7.7.7"), ("g:a2", "10.7.7.7"), ("u:1", "10.8.0.1"),
                        ("u:2", "10.8.0.2"), ("g:z1", "10.9.9.9"), ("g:z2", "10.9.9.9"),
                        ("u:3", "10.8.0.3"), ("u:4", "10.8.0.4")):
        assert (await join(room, event_id, who, client=client, spacing=2)).place == "queued"
    order = [b.decode() for b in await inv.client.zrange(room.keys.room(event_id)[1], 0, -1)]
    # seq a1=1, a2=2 (+2: behind u:1 and u:2), u:1=3, u:2=4, z1=5, z2=6 (+2: behind u:3, u:4)
    assert order == ["g:a1", "u:1", "u:2", "g:a2", "g:z1", "u:3", "u:4", "g:z2"]


@pytest.mark.xfail(strict=True, reason="review: after the release an address's later place "
                   "is overtaken by up to (n-1) * spacing later arrivals, so its `ahead` (and "
                   "wait_seconds, progress) grows while it waits; not fixed (no clear estimate)")
async def test_a_queued_visitors_ahead_never_grows(parts):
    """The page shows `ahead`, a wait of ahead / rate and a progress bar from it; a person behind
    a shared address (their address's second place) is told 1 ahead, then sees the line grow in
    front of them as people who came after them arrive."""
    inv, room = parts
    event_id, _ = await room_event(inv, room, rate=0.01, release_in=-1, paused=True)
    await join(room, event_id, "g:n1", client="100.64.0.1", spacing=100)
    await join(room, event_id, "g:n2", client="100.64.0.1", spacing=100)
    told = (await room.status(event_id, "g:n2")).ahead
    for i in range(20):
        await join(room, event_id, f"g:later{i}", client=f"10.2.0.{i}", spacing=100)
    assert (await room.status(event_id, "g:n2")).ahead <= told


async def test_admission_never_exceeds_the_rate_over_any_window(parts):
    inv, room = parts
    rate = 20
    event_id, _ = await room_event(inv, room, capacity=10_000, rate=rate)
    for i in range(200):
        await join(room, event_id, f"g:v{i}")
    events: list[tuple[int, int]] = []  # (Redis ms, admitted by that tick)
    loop = asyncio.get_running_loop()
    end = loop.time() + 2.5
    while loop.time() < end:
        figures = await room.tick(event_id)
        if figures.admitted_now:
            events.append((figures.now, figures.admitted_now))
        await asyncio.sleep(0.005)  # pacing: the ticks run across real time
    total = sum(n for _, n in events)
    assert 40 <= total <= rate * 2.5 + rate + 1
    for i in range(len(events)):
        count = 0
        for j in range(i, len(events)):
            count += events[j][1]
            window = (events[j][0] - events[i][0]) / 1000
            assert count <= rate * window + rate + 1e-9, (i, j, count, window)


async def test_concurrent_ticks_admit_each_visitor_once(parts, services):
    inv, room = parts
    event_id, _ = await room_event(inv, room, capacity=100_000, rate=100_000)
    buyers = [f"g:c{i}" for i in range(3000)]
    for chunk in range(0, len(buyers), 500):
        await asyncio.gather(*(join(room, event_id, b) for b in buyers[chunk:chunk + 500]))
    clients = [redis.Redis.from_url(services.redis_url) for _ in range(6)]
    rooms = [WaitingRoom(ScriptRunner(c), room.keys) for c in clients]
    try:
        async def ticker(r: WaitingRoom) -> int:
            total = 0
            while True:
                figures = await r.tick(event_id)
                total += figures.admitted_now
                if figures.queued == 0:
                    return total

        totals = await asyncio.gather(*(ticker(r) for r in rooms for _ in range(3)))
    finally:
        for c in clients:
            await c.aclose()
    admitted = await inv.client.hgetall(room.keys.room(event_id)[3])
    numbers = sorted(int(v.split(b"|")[0]) for v in admitted.values())
    assert sum(totals) == 3000 and len(admitted) == 3000
    assert numbers == list(range(1, 3001))  # every pass number given once
    assert {k.decode() for k in admitted} == set(buyers)


async def test_the_room_knows_the_stock(parts):
    inv, room = parts
    event_id, pkg = await room_event(inv, room, capacity=3, rate=1000)
    for i in range(10):
        await join(room, event_id, f"g:s{i}")
    figures = await room.tick(event_id)
    assert figures.admitted_now == 3 and figures.live_passes == 3  # never more than could buy
    assert (await room.tick(event_id)).state == "all_offered"
    hold = await inv.hold(event_id, "g:s0", {pkg: 3})
    assert await room.use_pass(event_id, "g:s0", 1, hold) == "ok"
    figures = await room.tick(event_id)
    assert figures.state == "all_held" and figures.admitted_now == 0
    assert (await room.status(event_id, "g:s5")).state == "all_held"
    await inv.release(event_id, hold.id, "g:s0")
    figures = await room.tick(event_id)  # 3 back on sale, two passes still out: one more
    assert figures.admitted_now == 1 and figures.live_passes == 3
    await inv.hold(event_id, "g:s1", {pkg: 3})
    hold1, _ = await inv.find_hold(event_id, buyer="g:s1")
    await inv.confirm(event_id, hold1, "ORD-1-TEST")
    figures = await room.status(event_id, "g:s9")
    assert figures.state == "sold_out" and figures.place == "queued"
    refused = await join(room, event_id, "g:late")
    assert not refused.ok and refused.reason == "sold_out"


async def test_passes_make_one_basket(parts):
    inv, room = parts
    event_id, pkg = await room_event(inv, room, capacity=50, rate=1000)
    await join(room, event_id, "g:a")
    await room.tick(event_id)
    status = await room.status(event_id, "g:a")
    assert status.place == "admitted" and status.pass_ == 1
    assert await room.check_pass(event_id, "g:a", 1) == "ok"
    assert await room.check_pass(event_id, "g:a", 2) == "pass_replaced"
    assert await room.check_pass(event_id, "g:b", 1) == "pass_expired"  # not theirs: no pass
    hold = await inv.hold(event_id, "g:a", {pkg: 1})
    assert await room.use_pass(event_id, "g:a", 1, hold) == "ok"
    assert await room.use_pass(event_id, "g:a", 1, hold) == "again"
    assert await room.check_pass(event_id, "g:a", 1) == "pass_used"  # no second basket
    assert await room.check_pass(event_id, "g:a", 1, hold.id) == "ok"  # its checkout
    figures = await room.tick(event_id)
    assert figures.used == 1 and figures.live_passes == 0


async def test_a_hold_id_made_again_is_not_the_basket_the_pass_made(parts):
    """A keyed hold id can be made again once its hold is given back: the pass stood for the first
    basket, not this one. The same hold answered twice (a double submit) is the same basket,
    whichever request marks the pass first."""
    inv, room = parts
    event_id, pkg = await room_event(inv, room, capacity=50, rate=1000)
    await join(room, event_id, "g:a")
    await room.tick(event_id)
    first = await inv.hold(event_id, "g:a", {pkg: 1}, hold_id=f"H{event_id}-keyed")
    replayed = await inv.hold(event_id, "g:a", {pkg: 1}, hold_id=first.id)
    assert await room.use_pass(event_id, "g:a", 1, replayed) == "ok"
    assert await room.use_pass(event_id, "g:a", 1, first) == "again"
    again = first
    while again.created_at == first.created_at:  # (made again in a later millisecond)
        await inv.release(event_id, again.id, "g:a")
        again = await inv.hold(event_id, "g:a", {pkg: 4}, hold_id=first.id)
    assert await room.use_pass(event_id, "g:a", 1, again) == "pass_used"
    assert (await room.status(event_id, "g:a")).hold == first.id

async def test_unused_passes_expire_and_the_next_visitor_moves_up(parts):
    inv, room = parts
    event_id, _ = await room_event(inv, room, capacity=1, rate=1000, pass_seconds=10)
    await join(room, event_id, "g:first")
    await join(room, event_id, "g:second")
    assert (await room.tick(event_id)).admitted_now == 1
    assert (await room.status(event_id, "g:second")).ahead == 0
    # the pass's time runs out (as the clock would make it)
    await inv.client.zadd(room.keys.room(event_id)[2], {"g:first": 0})
    figures = await room.tick(event_id)
    assert figures.expired == 1 and figures.admitted_now == 1
    assert (await room.status(event_id, "g:second")).place == "admitted"
    assert await room.check_pass(event_id, "g:first", 1) == "pass_expired"


async def test_paused_and_off(parts):
    inv, room = parts
    event_id, _ = await room_event(inv, room, rate=1000, paused=True)
    await join(room, event_id, "g:p")
    figures = await room.tick(event_id)
    assert figures.state == "paused" and figures.admitted_now == 0
    await configure(room, event_id, rate=1000)
    assert (await room.tick(event_id)).admitted_now == 1
    await configure(room, event_id, enabled=False)
    assert not (await join(room, event_id, "g:q")).ok
    assert event_id not in await room.rooms_on()


async def test_a_proof_is_accepted_once_and_joins_are_limited_per_address(parts):
    inv, room = parts
    event_id, _ = await room_event(inv, room, rate=0.01)
    import time
    exp = int(time.time() * 1000) + 60_000
    assert (await room.join(event_id, "g:x", "ab" * 16, exp, "10.0.0.1", 0)).ok
    again = await room.join(event_id, "g:y", "ab" * 16, exp, "10.0.0.1", 0)
    assert not again.ok and again.reason == "proof_used"
    stale = await room.join(event_id, "g:y", "cd" * 16, exp - 120_000, "10.0.0.1", 0)
    assert stale.reason == "proof_expired"
    results = [await join(room, event_id, f"g:ip{i}", client="10.0.0.9", per_minute=5)
               for i in range(8)]
    assert [r.ok for r in results] == [True] * 5 + [False] * 3
    assert results[-1].reason == "rate_limited" and results[-1].retry_after_ms > 0


async def test_the_settings_survive_a_script_flush(parts):
    inv, room = parts
    event_id, _ = await room_event(inv, room, rate=1000)
    await inv.client.script_flush()
    assert (await join(room, event_id, "g:f")).ok


TICKER = """
import asyncio, sys
import redis.asyncio as redis
from engine.keys import Keys
from engine.lua import ScriptRunner
from engine.room import WaitingRoom

async def main(url, prefix, event_id):
    client = redis.Redis.from_url(url)
    room = WaitingRoom(ScriptRunner(client), Keys(prefix))
    total = 0
    while True:
        figures = await room.tick(event_id)
        total += figures.admitted_now
        if figures.queued == 0:
            break
    await client.aclose()
    print(total)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def test_ticks_from_several_processes_admit_each_visitor_once(parts, services):
    inv, room = parts
    event_id, _ = await room_event(inv, room, capacity=100_000, rate=2_000)  # ~1.5 s: they overlap
    for chunk in range(0, 4000, 500):
        await asyncio.gather(*(join(room, event_id, f"g:p{i}") for i in range(chunk, chunk + 500)))
    root = str(Path(__file__).resolve().parents[1])
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, "-c", TICKER, services.redis_url, room.keys.prefix, str(event_id),
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": root}) for _ in range(3)]
    outs = [await p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    totals = [int(out.decode()) for out, _ in outs]
    admitted = await inv.client.hgetall(room.keys.room(event_id)[3])
    numbers = sorted(int(v.split(b"|")[0]) for v in admitted.values())
    assert sum(totals) == 4000 and numbers == list(range(1, 4001))
