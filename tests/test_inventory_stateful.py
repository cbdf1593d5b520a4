"""Random sequences of load / hold / release / expire / confirm / unsell / block, with the
inventory invariants checked after every step (hypothesis stateful testing)."""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from engine.errors import Conflict, NotFound
from engine.inventory import HoldRefused, Inventory
from engine.keys import Keys
from tests.inventory_helpers import check_invariants, event, package, seat_map, with_blocked

BUYERS = st.sampled_from(["ann", "ben", "cat", "dan"])


class InventoryMachine(RuleBasedStateMachine):
    redis_url = ""
    holds = Bundle("holds")
    sales = Bundle("sales")

    def __init__(self):
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.client = redis.Redis.from_url(self.redis_url)
        self.prefix = f"kwh{uuid.uuid4().hex[:8]}"
        self.inv = Inventory(self.client, Keys(self.prefix))
        self.event = event(seated=True, buyer_cap=7)
        self.ga = package(self.event.id, capacity=8, max_per_order=4, per_buyer_limit=5)
        self.seated = package(self.event.id, capacity=0, max_per_order=4)
        self.seat_map = seat_map(self.event.id, self.seated.id, 6)
        self.seat_ids = [s.id for s in self.seat_map.sections[0].seats]
        self.orders = 0
        self.blocked: set[int] = set()
        self.version = 0
        self.run(self.inv.load(self.event, [self.ga, self.seated], self.seat_map))

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def teardown(self):
        async def clean():
            keys = [k async for k in self.client.scan_iter(match=f"{self.prefix}:*")]
            if keys:
                await self.client.delete(*keys)
            await self.inv.close()
            await self.client.aclose()
        self.run(clean())
        self.loop.close()

    @rule(target=holds, buyer=BUYERS, qty=st.integers(1, 5))
    def hold_tickets(self, buyer, qty):
        try:
            return self.run(self.inv.hold(self.event.id, buyer, {self.ga.id: qty}))
        except HoldRefused as refused:
            assert refused.reason in ("not_enough", "sold_out", "limit_exceeded", "above_maximum",
                                      "basket_exists", "event_limit_exceeded")
            return None

    @rule(target=holds, buyer=BUYERS, seats=st.lists(st.integers(0, 5), min_size=1, max_size=3, unique=True))
    def hold_seats(self, buyer, seats):
        try:
            return self.run(self.inv.hold(self.event.id, buyer, seat_ids=[self.seat_ids[i] for i in seats]))
        except HoldRefused as refused:
            assert refused.reason in ("seat_unavailable", "basket_exists", "event_limit_exceeded")
            return None

    @rule(hold=consumes(holds))
    def release(self, hold):
        if hold is not None:
            try:
                self.run(self.inv.release(self.event.id, hold.id, hold.buyer))
            except NotFound as exc:  # already expired or confirmed
                assert exc.code == "unknown_hold"

    @rule(hold=holds)
    def time_passes_for(self, hold):
        """Move one hold's expiry into the past (as the clock would) and sweep."""
        if hold is not None:
            key = self.inv.keys.event(self.event.id, "expiry")
            if self.run(self.client.zscore(key, hold.id)) is not None:
                self.run(self.client.zadd(key, {hold.id: 0}))
            self.run(self.inv.expire(self.event.id))

    @rule(target=sales, hold=holds)
    def confirm(self, hold):
        if hold is None:
            return None
        self.orders += 1
        try:
            return self.run(self.inv.confirm(self.event.id, hold, f"ORD-{self.orders}"))
        except HoldRefused as refused:
            assert refused.reason in ("stock_gone", "hold_already_sold", "limit_exceeded",
                                      "event_limit_exceeded", "above_maximum")
            return None

    @rule(sale=sales, restock=st.booleans())
    def unsell(self, sale, restock):
        if sale is not None:
            self.run(self.inv.unsell(self.event.id, sale.order_number, restock))

    @rule(capacity=st.integers(0, 14))
    def provider_changes_capacity(self, capacity):
        changed = package(self.event.id, capacity=capacity, max_per_order=4, per_buyer_limit=5,
                          id=self.ga.id)
        try:
            self.run(self.inv.load(self.event, [changed, self.seated],
                                   with_blocked(self.seat_map, self.blocked), version=self.version))
            self.ga = changed
        except Conflict:
            stock = self.run(self.inv.availability(self.event.id)).packages[self.ga.id]
            withdrawn = int(self.run(self.client.hget(self.inv.keys.event(self.event.id, "stock"),
                                                      f"{self.ga.id}:withdrawn")) or 0)
            assert max(0, capacity - withdrawn) < stock.held + stock.sold

    @rule(seat=st.integers(0, 5), block=st.booleans(), settle=st.booleans())
    def provider_blocks_seat(self, seat, block, settle):
        """A catalog change of a seat's block: narrowed before the commit, settled (or not yet,
        as when the process dies between the two) after it."""
        sid = self.seat_ids[seat]
        wanted = self.blocked | {sid} if block else self.blocked - {sid}
        self.version += 1
        smap = with_blocked(self.seat_map, wanted)
        try:
            self.run(self.inv.load(self.event, [self.ga, self.seated], smap, mode="narrow",
                                   version=self.version))
        except Conflict:
            state = self.run(self.inv.availability(self.event.id, True)).seats[sid]
            assert state in ("held", "sold")
            return
        self.blocked = wanted
        if settle:
            self.run(self.inv.load(self.event, [self.ga, self.seated], smap, version=self.version))

    @invariant()
    def books_balance(self):
        self.run(check_invariants(self.inv, self.event.id))

    @invariant()
    def catalog_blocks_are_off_sale(self):
        seats = self.run(self.inv.availability(self.event.id, True)).seats
        assert all(seats[sid] == "blocked" for sid in self.blocked)


def test_random_sequences_keep_the_books(services):
    InventoryMachine.redis_url = services.redis_url
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(InventoryMachine, settings=settings(
        max_examples=60, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.too_slow]))
