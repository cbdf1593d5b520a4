"""The inventory scripts through the engine interface, on a single Redis and on a 3-node Cluster."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import msgspec
import pytest
import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster

from engine.errors import Conflict, Invalid, NotFound
from engine.inventory import HoldRefused, Inventory
from engine.keys import Keys
from tests.cluster import LocalCluster
from tests.inventory_helpers import NOW, check_invariants, event, package, seat_map, with_blocked


@pytest.fixture(scope="session")
def cluster_url(tmp_path_factory):
    if not LocalCluster.available():
        pytest.skip("redis-server/redis-cli not installed: `apt-get install redis-server` (./dev test does)")
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(params=["single", "cluster"])
async def inv(request, services):
    if request.param == "cluster":
        client = RedisCluster.from_url(request.getfixturevalue("cluster_url"), max_connections=200)
    else:
        client = redis.Redis.from_url(services.redis_url, max_connections=200)
    prefix = f"kwi{uuid.uuid4().hex[:8]}"
    inventory = Inventory(client, Keys(prefix))
    yield inventory
    await inventory.close()
    async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        await client.delete(key)
    await client.aclose()


async def loaded(inv: Inventory, capacity: int = 100, seats: int = 0, **pkg_kw):
    ev = event(seated=bool(seats))
    pkg = package(ev.id, capacity=capacity, **pkg_kw)
    smap = seat_map(ev.id, pkg.id, seats) if seats else None
    await inv.load(ev, [pkg], smap)
    return ev, pkg, smap


async def test_hold_release_confirm_roundtrip(inv):
    ev, pkg, _ = await loaded(inv, capacity=10)
    hold = await inv.hold(ev.id, "b1", {pkg.id: 3})
    assert hold.total == 3 * pkg.price and hold.items[0].quantity == 3
    assert hold.expires_at - hold.created_at == timedelta(seconds=900)
    stock = (await inv.availability(ev.id)).packages[pkg.id]
    assert (stock.available, stock.held, stock.sold) == (7, 3, 0)
    sale = await inv.confirm(ev.id, hold, "ORD-1")
    again = await inv.confirm(ev.id, hold, "ORD-1")
    assert not sale.replay and again.replay and again.order_number == "ORD-1"
    stock = (await inv.availability(ev.id)).packages[pkg.id]
    assert (stock.available, stock.held, stock.sold) == (7, 0, 3)
    other = await inv.hold(ev.id, "b2", {pkg.id: 2})
    await inv.release(ev.id, other.id, "b2")
    with pytest.raises(NotFound):
        await inv.release(ev.id, other.id, "b2")
    assert (await inv.availability(ev.id)).packages[pkg.id].available == 7
    assert await inv.unsell(ev.id, "ORD-1") is True
    assert await inv.unsell(ev.id, "ORD-1") is False  # idempotent
    assert (await inv.availability(ev.id)).packages[pkg.id].available == 10
    await check_invariants(inv, ev.id)


@pytest.mark.parametrize("kw, items, reason", [
    ({"capacity": 2}, lambda p: {p.id: 3}, "not_enough"),
    ({"capacity": 0}, lambda p: {p.id: 1}, "sold_out"),
    ({"min_per_order": 2}, lambda p: {p.id: 1}, "below_minimum"),
    ({"max_per_order": 2}, lambda p: {p.id: 3}, "above_maximum"),
    ({"opens_at": NOW + timedelta(days=1)}, lambda p: {p.id: 1}, "sale_not_open"),
    ({"closes_at": NOW - timedelta(seconds=1)}, lambda p: {p.id: 1}, "sale_closed"),
    ({"is_active": False}, lambda p: {p.id: 1}, "sale_closed"),
    ({}, lambda p: {p.id + 999_999: 1}, "unknown_package"),
])
async def test_refusals_take_nothing(inv, kw, items, reason):
    ev, pkg, _ = await loaded(inv, **{"capacity": 10, **kw})
    before = await inv.availability(ev.id)
    with pytest.raises(HoldRefused) as refused:
        await inv.hold(ev.id, "b1", items(pkg))
    assert refused.value.reason == reason
    assert await inv.availability(ev.id) == before
    await check_invariants(inv, ev.id)


async def test_event_not_on_sale(inv):
    ev, pkg, _ = await loaded(inv)
    with pytest.raises(HoldRefused) as refused:
        await inv.hold(ev.id + 500_000, "b", {pkg.id: 1})
    assert refused.value.reason == "not_loaded"
    await inv.load(event(ev.id, status="postponed"), [pkg], None)
    with pytest.raises(HoldRefused) as refused:
        await inv.hold(ev.id, "b", {pkg.id: 1})
    assert refused.value.reason == "not_on_sale" and refused.value.detail["status"] == "paused"


async def test_seats_all_or_nothing_with_modifiers(inv):
    ev, pkg, smap = await loaded(inv, seats=6)
    ids = [s.id for s in smap.sections[0].seats]
    first = await inv.hold(ev.id, "b1", seat_ids=ids[:2])
    assert [s.seat_id for s in first.seats] == ids[:2] and first.total == 2 * 1000
    with pytest.raises(HoldRefused) as refused:
        await inv.hold(ev.id, "b2", seat_ids=[ids[1], ids[2]])
    assert refused.value.reason == "seat_unavailable" and refused.value.detail["seat_ids"] == [ids[1]]
    a = await inv.availability(ev.id, with_seats=True)
    assert a.seats[ids[2]] == "available" and a.seats[ids[1]] == "held"
    with pytest.raises(HoldRefused) as refused:
        await inv.hold(ev.id, "b2", {pkg.id: 1})
    assert refused.value.reason == "seat_required"
    with pytest.raises(HoldRefused) as refused:
        await inv.hold(ev.id, "b2", seat_ids=[999_999_999])
    assert refused.value.reason == "unknown_seat"
    await check_invariants(inv, ev.id)


async def test_block_and_unblock_seats(inv):
    """Blocks come with the catalog: a narrowing load blocks (and refuses a held seat), only a
    full load unblocks."""
    ev, pkg, smap = await loaded(inv, seats=4)
    ids = [s.id for s in smap.sections[0].seats]
    hold = await inv.hold(ev.id, "b1", seat_ids=[ids[0]])
    with pytest.raises(Conflict) as refused:
        await inv.load(ev, [pkg], with_blocked(smap, {ids[0], ids[1]}), mode="narrow", version=1)
    assert refused.value.code == "seat_unavailable"
    assert (await inv.availability(ev.id, with_seats=True)).seats[ids[1]] == "available"
    await inv.load(ev, [pkg], with_blocked(smap, {ids[1], ids[2]}), mode="narrow", version=2)
    stock = (await inv.availability(ev.id)).packages[pkg.id]
    assert (stock.capacity, stock.available) == (2, 1)
    with pytest.raises(HoldRefused):
        await inv.hold(ev.id, "b2", seat_ids=[ids[1]])
    await inv.load(ev, [pkg], with_blocked(smap, {ids[2]}), mode="narrow", version=3)
    assert (await inv.availability(ev.id, with_seats=True)).seats[ids[1]] == "blocked"  # waits
    await inv.load(ev, [pkg], with_blocked(smap, {ids[2]}), version=3)
    assert (await inv.availability(ev.id, with_seats=True)).seats[ids[1]] == "available"
    await inv.release(ev.id, hold.id, "b1")
    await check_invariants(inv, ev.id)


async def test_load_is_idempotent_and_guards_capacity(inv):
    ev, pkg, _ = await loaded(inv, capacity=10)
    await inv.hold(ev.id, "b1", {pkg.id: 6})
    await inv.load(ev, [pkg], None)  # reload changes nothing live
    stock = (await inv.availability(ev.id)).packages[pkg.id]
    assert (stock.capacity, stock.available, stock.held) == (10, 4, 6)
    await inv.load(ev, [package(ev.id, capacity=15, id=pkg.id)], None)
    assert (await inv.availability(ev.id)).packages[pkg.id].available == 9
    with pytest.raises(Conflict):
        await inv.load(ev, [package(ev.id, capacity=5, id=pkg.id)], None)
    assert (await inv.availability(ev.id)).packages[pkg.id].capacity == 15
    await check_invariants(inv, ev.id)


async def test_retry_with_same_hold_id_is_one_hold(inv):
    ev, pkg, _ = await loaded(inv, capacity=10)
    holds = await asyncio.gather(*[inv.hold(ev.id, "b1", {pkg.id: 2}, hold_id=f"H{ev.id}-same")
                                   for _ in range(10)])
    assert {h.id for h in holds} == {f"H{ev.id}-same"}
    assert (await inv.availability(ev.id)).packages[pkg.id].held == 2
    with pytest.raises(HoldRefused) as refused:
        await inv.hold(ev.id, "intruder", {pkg.id: 2}, hold_id=f"H{ev.id}-same")
    assert refused.value.reason == "hold_id_taken"


async def test_confirm_after_expiry_retakes_or_refuses(inv):
    ev, _, smap = await loaded(inv, seats=2)
    ids = [s.id for s in smap.sections[0].seats]
    lapsed = await inv.hold(ev.id, "b1", seat_ids=[ids[0]], ttl_seconds=1)
    await inv.release(ev.id, lapsed.id, "b1")  # as if swept: the hold is gone, the seat is free
    sale = await inv.confirm(ev.id, lapsed, "ORD-late")
    assert sale.retaken
    gone = await inv.hold(ev.id, "b2", seat_ids=[ids[1]])
    await inv.release(ev.id, gone.id, "b2")
    await inv.hold(ev.id, "b3", seat_ids=[ids[1]])  # someone else took the seat
    with pytest.raises(HoldRefused) as refused:
        await inv.confirm(ev.id, gone, "ORD-refund")
    assert refused.value.reason == "stock_gone"
    await check_invariants(inv, ev.id)


async def test_confirm_appends_to_orders_stream(inv):
    ev, pkg, _ = await loaded(inv)
    hold = await inv.hold(ev.id, "b1", {pkg.id: 1})
    await inv.confirm(ev.id, hold, "ORD-9", extra={"payment": "sandbox-1"})
    await inv.confirm(ev.id, hold, "ORD-9")
    entries = await inv.client.xrange(inv.keys.event(ev.id, "orders"))
    assert len(entries) == 1
    assert entries[0][1][b"order"] == b"ORD-9" and b"sandbox-1" in entries[0][1][b"extra"]


async def test_survives_script_flush(inv):
    ev, pkg, _ = await loaded(inv)
    await inv.client.script_flush()  # a cluster client sends it to every primary
    hold = await inv.hold(ev.id, "b1", {pkg.id: 1})
    assert hold.items[0].quantity == 1


async def test_keys_share_one_cluster_slot(inv):
    from redis.crc import key_slot

    assert len({key_slot(k.encode()) for k in inv.event_keys(42)}) == 1


# --- contention -----------------------------------------------------------------------------
async def test_5000_buyers_1000_tickets_never_oversell(inv):
    ev, pkg, _ = await loaded(inv, capacity=1000)
    results = await asyncio.gather(*[inv.hold(ev.id, f"b{i}", {pkg.id: 1}) for i in range(5000)],
                                   return_exceptions=True)
    won = [r for r in results if not isinstance(r, Exception)]
    lost = [r for r in results if isinstance(r, HoldRefused)]
    assert len(won) == 1000 and len(lost) == 4000
    assert {r.reason for r in lost} == {"sold_out"}
    stock = (await inv.availability(ev.id)).packages[pkg.id]
    assert (stock.available, stock.held) == (0, 1000)
    await check_invariants(inv, ev.id)


async def test_2000_buyers_racing_for_overlapping_seats(inv):
    ev, _, smap = await loaded(inv, seats=200)
    ids = [s.id for s in smap.sections[0].seats]
    # buyer i wants 4 adjacent seats starting at i % 197: neighbours overlap by up to 3 seats
    wanted = [ids[i % 197: i % 197 + 4] for i in range(2000)]
    results = await asyncio.gather(*[inv.hold(ev.id, f"b{i}", seat_ids=w) for i, w in enumerate(wanted)],
                                   return_exceptions=True)
    won = [r for r in results if not isinstance(r, Exception)]
    assert all(isinstance(r, HoldRefused) and r.reason == "seat_unavailable"
               for r in results if isinstance(r, Exception))
    seats = [s.seat_id for h in won for s in h.seats]
    assert len(seats) == len(set(seats)) and len(won) >= 200 // 4 // 2
    await check_invariants(inv, ev.id)


async def test_one_basket_and_per_buyer_limit_under_50_simultaneous_holds(inv):
    ev, pkg, _ = await loaded(inv, capacity=1000, per_buyer_limit=4)
    results = await asyncio.gather(*[inv.hold(ev.id, "u:greedy", {pkg.id: 1}) for _ in range(50)],
                                   return_exceptions=True)
    won = [r for r in results if not isinstance(r, Exception)]
    assert len(won) == 1
    assert {r.reason for r in results if isinstance(r, Exception)} == {"basket_exists"}
    await inv.confirm(ev.id, won[0], "ORD-first")
    bought = 1
    for n in range(10):  # buy, then hold again: the package limit counts what was bought
        try:
            hold = await inv.hold(ev.id, "u:greedy", {pkg.id: 1})
        except HoldRefused as refused:
            assert refused.reason == "limit_exceeded" and refused.detail["already"] == 4
            break
        await inv.confirm(ev.id, hold, f"ORD-{n}")
        bought += 1
    assert bought == 4
    await check_invariants(inv, ev.id)


async def test_fresh_guests_from_one_address_race_for_its_new_guest_budget(inv):
    """300 guests new to the event, from one address, at once, for a package of 100 with a
    per-buyer limit of 2: the address may bring 7 new guests a minute into the event, so exactly
    7 hold (2 each), the rest are rate_limited (scope `new`) and take nothing; a signed-in buyer
    from the same address is not a new guest and still holds."""
    from engine.inventory import HoldLimits
    ev, pkg, _ = await loaded(inv, capacity=100, per_buyer_limit=2)
    limits = HoldLimits(client="198.51.100.7", buyer=(10, 10), ip=(1000, 1000), new_guest=(7, 1))
    results = await asyncio.gather(*[inv.hold(ev.id, f"g:bot{i}", {pkg.id: 2}, limits=limits)
                                     for i in range(300)], return_exceptions=True)
    won = [r for r in results if not isinstance(r, Exception)]
    lost = [r for r in results if isinstance(r, Exception)]
    assert len(won) == 7 and len({h.buyer for h in won}) == 7
    assert all(isinstance(r, HoldRefused) and r.reason == "rate_limited"
               and r.detail["scope"] == "new" for r in lost)
    assert (await inv.availability(ev.id)).packages[pkg.id].held == 14
    await inv.hold(ev.id, "u:member", {pkg.id: 2}, limits=limits)
    await check_invariants(inv, ev.id)


async def test_expiring_holds_return_stock_exactly_once(inv):
    ev, pkg, _ = await loaded(inv, capacity=100)
    short = await asyncio.gather(*[inv.hold(ev.id, f"s{i}", {pkg.id: 1}, ttl_seconds=1)
                                   for i in range(100)])
    deadline = max(h.expires_at for h in short)
    while True:  # wait on the server's clock, which is what the scripts use
        sec, usec = await inv.client.time()
        if sec + usec / 1e6 > deadline.timestamp() + 0.001:
            break
        await asyncio.sleep(0.05)
    racers = [inv.hold(ev.id, f"r{i}", {pkg.id: 1}) for i in range(300)]
    sweeps = [inv.expire(ev.id, limit=7) for _ in range(30)]
    results = await asyncio.gather(*racers, *sweeps, return_exceptions=True)
    won = [r for r in results[:300] if not isinstance(r, Exception)]
    assert len(won) == 100
    stock = (await inv.availability(ev.id)).packages[pkg.id]
    assert (stock.capacity, stock.available, stock.held) == (100, 0, 100)
    await check_invariants(inv, ev.id)


async def test_audit_reports_broken_books(inv):
    from engine.audit import audit

    ev, pkg, smap = await loaded(inv, seats=3)
    ids = [s.id for s in smap.sections[0].seats]
    await inv.hold(ev.id, "b1", seat_ids=[ids[0]])
    assert await audit(inv, ev.id) == []
    stock = inv.keys.event(ev.id, "stock")
    await inv.client.hincrby(stock, f"{pkg.id}:avail", 1)  # a ticket appears from nowhere
    await inv.client.hset(inv.keys.event(ev.id, "seats"), str(ids[1]), "h:ghost")
    problems = await audit(inv, ev.id)
    assert any("!= capacity" in p for p in problems)
    assert any("held or sold by nobody" in p for p in problems)


# --- the late-payment policy (scripts/lua/confirm.lua) ----------------------------------------
async def _lapsed(inv, ev, pkg, buyer="u:late", qty=2):
    hold = await inv.hold(ev.id, buyer, {pkg.id: qty})
    await inv.release(ev.id, hold.id, buyer)  # as if it expired and was swept
    return hold


@pytest.mark.parametrize("change, reason", [
    ({"status": "postponed"}, "not_on_sale"),
    ({"status": "cancelled"}, "not_on_sale"),
    ({"is_active": False}, "sale_closed"),
    ({"closes_at": NOW - timedelta(seconds=1)}, "sale_closed"),
])
async def test_a_late_payment_retakes_only_what_a_new_hold_could_take(inv, change, reason):
    """Paused, closed, inactive or out of its window: the late payment is refused (the caller
    refunds) and nothing is sold."""
    ev, pkg, _ = await loaded(inv, capacity=10)
    hold = await _lapsed(inv, ev, pkg)
    change = dict(change)
    status = change.pop("status", "published")
    await inv.load(event(ev.id, status=status), [package(ev.id, capacity=10, id=pkg.id, **change)], None)
    with pytest.raises(HoldRefused) as refused:
        await inv.confirm(ev.id, hold, "ORD-late")
    assert refused.value.reason == reason
    stock = (await inv.availability(ev.id)).packages[pkg.id]
    assert stock.sold == 0 and stock.available == 10
    await check_invariants(inv, ev.id)


async def test_a_late_payment_respects_the_buyer_limits(inv):
    ev, pkg, _ = await loaded(inv, capacity=10, per_buyer_limit=4)
    hold = await _lapsed(inv, ev, pkg, qty=2)
    again = await inv.hold(ev.id, "u:late", {pkg.id: 3})  # the buyer bought more meanwhile
    await inv.confirm(ev.id, again, "ORD-second")
    with pytest.raises(HoldRefused) as refused:
        await inv.confirm(ev.id, hold, "ORD-first")
    assert refused.value.reason == "limit_exceeded"
    ev2, pkg2, _ = await loaded(inv, capacity=10)
    await inv.load(event(ev2.id, buyer_cap=3), [pkg2], None)
    hold = await _lapsed(inv, ev2, pkg2, qty=2)
    await inv.confirm(ev2.id, await inv.hold(ev2.id, "u:late", {pkg2.id: 2}), "ORD-third")
    with pytest.raises(HoldRefused) as refused:
        await inv.confirm(ev2.id, hold, "ORD-fourth")
    assert refused.value.reason == "event_limit_exceeded"
    await check_invariants(inv, ev.id)
    await check_invariants(inv, ev2.id)


async def test_a_live_hold_is_sold_while_paused_but_not_once_closed(inv):
    ev, pkg, _ = await loaded(inv, capacity=10)
    live = await inv.hold(ev.id, "u:a", {pkg.id: 1})
    other = await inv.hold(ev.id, "u:b", {pkg.id: 1})
    await inv.load(event(ev.id, status="postponed"), [pkg], None)
    assert (await inv.confirm(ev.id, live, "ORD-paused")).retaken is False
    await inv.load(event(ev.id, status="cancelled"), [pkg], None)  # gives back live holds too
    with pytest.raises(HoldRefused) as refused:
        await inv.confirm(ev.id, other, "ORD-closed")
    assert refused.value.reason == "not_on_sale"
    await check_invariants(inv, ev.id)


async def test_a_lapsed_hold_not_yet_swept_is_a_late_payment(inv):
    ev, pkg, _ = await loaded(inv, capacity=10)
    hold = await inv.hold(ev.id, "u:a", {pkg.id: 2}, ttl_seconds=1)
    holds_key = inv.keys.event(ev.id, "holds")
    raw = msgspec.json.decode(await inv.client.hget(holds_key, hold.id))
    raw["expires"] = raw["created"] - 1  # its time is up by the server's clock; not swept
    await inv.client.hset(holds_key, hold.id, msgspec.json.encode(raw))
    await inv.load(event(ev.id, status="postponed"), [pkg], None)
    with pytest.raises(HoldRefused) as refused:
        await inv.confirm(ev.id, hold, "ORD-lapsed")
    assert refused.value.reason == "not_on_sale"
    assert (await inv.availability(ev.id)).packages[pkg.id].held == 0  # given back on the way
    await check_invariants(inv, ev.id)


async def test_an_order_number_names_one_hold(inv):
    ev, pkg, _ = await loaded(inv, capacity=10)
    first = await inv.hold(ev.id, "u:a", {pkg.id: 1})
    await inv.confirm(ev.id, first, "ORD-same")
    second = await inv.hold(ev.id, "u:b", {pkg.id: 1})
    with pytest.raises(HoldRefused) as refused:
        await inv.confirm(ev.id, second, "ORD-same")
    assert refused.value.reason == "order_number_taken"
    assert (await inv.availability(ev.id)).packages[pkg.id].sold == 1
    await check_invariants(inv, ev.id)


@pytest.mark.parametrize("items, seats", [
    ({1: 1.5}, []), ({1: 0}, []), ({1: -1}, []), ({1: True}, []), ({0: 1}, []),
    ({1: 10**6}, []), ({}, [1, 1, 1, 1]), ({}, [1.5]), ({}, list(range(1, 102))),
    ({i: 1 for i in range(1, 60)}, []), ({"1": 1}, []),
])
async def test_the_engine_refuses_malformed_holds_before_redis(inv, items, seats):
    ev, _pkg, _ = await loaded(inv, capacity=10)
    with pytest.raises(Invalid):
        await inv.hold(ev.id, "u:a", items, seats)
    await check_invariants(inv, ev.id)


async def test_a_fast_limit_is_not_rounded_to_one_hold_a_millisecond(inv):
    """A per-address limit of 6,000,000 a minute refills 100 a millisecond: 300 holds one after
    another from one address all go through. (Its state rounded to whole milliseconds moved by
    1 ms a hold instead of 0.01 ms, and refused the rest after the burst of 20.)"""
    from engine.inventory import HoldLimits
    ev, pkg, _ = await loaded(inv, capacity=1000)
    limits = HoldLimits(client="192.0.2.1", ip=(20, 6_000_000))
    for i in range(300):
        await inv.hold(ev.id, f"u:{i}", {pkg.id: 1}, limits=limits)
    assert (await inv.availability(ev.id)).packages[pkg.id].held == 300


async def test_a_quantity_package_made_seated_after_sales_keeps_its_books(inv):
    """A full load that makes a package with tickets held and sold by quantity seated (a catalog
    capacity of 0, as a seated package may carry) keeps it a quantity package: its capacity may
    fall to what buyers have, never below (it fell to 0 and left -3 available)."""
    ev, pkg, _ = await loaded(inv, capacity=20)
    await inv.hold(ev.id, "u:ann", {pkg.id: 2})
    sold = await inv.hold(ev.id, "u:ben", {pkg.id: 1})
    await inv.confirm(ev.id, sold, "ORD-seated")
    seated = msgspec.structs.replace(pkg, capacity=0)
    await inv.load(ev, [seated], seat_map(ev.id, pkg.id, 4))
    stock = (await inv.availability(ev.id)).packages[pkg.id]
    assert (stock.capacity, stock.available, stock.held, stock.sold) == (3, 0, 2, 1)
    await check_invariants(inv, ev.id)
