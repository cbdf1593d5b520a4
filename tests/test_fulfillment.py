"""Fulfillment: confirmed sales from the orders streams become orders and tickets in Postgres,
exactly once, whatever dies or repeats on the way (real Redis and Postgres)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import msgspec
import pytest

from engine.orders import Attendee, Billing, SaleRecord
from fulfillment.consumer import GROUP, Fulfillment
from fulfillment.issuing import GateTicket, Issuer
from storefront.appkeys import DB, INVENTORY

EV = "/api/provider/events"
ROOT = Path(__file__).resolve().parents[1]
BILLING = Billing(name="Mphatso Jere", email="mphatso@example.test", phone="+265991000111")


async def _event(client, factory, seats=0, capacity=20):
    provider = await factory.user("provider")
    event = await factory.event(provider, requires_seating=bool(seats))
    pkg = await factory.package(provider, event["id"], capacity=capacity, price=7_000)
    section = None
    if seats:
        section = await factory.section(provider, event["id"], pkg["id"], rows=1, seats_per_row=seats)
    assert (await client.post(f"{EV}/{event['id']}/publish", headers=provider.h)).status == 200
    return event, pkg, section


async def _sell(inventory, event_id, buyer, items=None, seat_ids=None,
                number="ORD-1-AAAA") -> SaleRecord:
    """A sale as the payments desk makes it: the hold confirmed with its SaleRecord."""
    hold = await inventory.hold(event_id, buyer, items or {}, seat_ids or [])
    tickets = sum(i.quantity for i in hold.items) + len(hold.seats)
    record = SaleRecord(
        order_number=number, hold_id=hold.id, buyer=buyer,
        ga=[(i.package_id, i.quantity, i.unit_price) for i in hold.items],
        seats=[(s.seat_id, s.package_id, s.price) for s in hold.seats],
        attendees=[Attendee(name=f"Guest {n}", email=f"g{n}@example.test") for n in range(tickets)],
        billing=BILLING, subtotal=hold.total, fees=0, total=hold.total, currency="MWK",
        payment=f"{number}-PAY", gateway="sandbox")
    await inventory.client.sadd(inventory.keys.selling(), event_id)
    await inventory.confirm(event_id, hold, number, extra=msgspec.to_builtins(record))
    return record


def _desk(app, **kw) -> Fulfillment:
    inventory = app[INVENTORY]
    return Fulfillment(inventory, app[DB], after_write=Issuer(app[DB], inventory.client, inventory.keys),
                       **kw)


async def test_a_sale_becomes_an_order_and_its_tickets_once(client, factory, db):
    app = client.server.app
    event, pkg, _ = await _event(client, factory)
    await _sell(app[INVENTORY], event["id"], "u:1", {pkg["id"]: 3})
    desk = _desk(app)
    assert await desk.round() == 1
    order = await db.fetchrow("SELECT * FROM orders WHERE order_number = 'ORD-1-AAAA'")
    assert (order["email"], order["total"], order["status"]) == (BILLING.email, 21_000, "confirmed")
    tickets = await db.fetch("SELECT * FROM tickets WHERE order_id = $1 ORDER BY id", order["id"])
    assert [t["attendee_name"] for t in tickets] == ["Guest 0", "Guest 1", "Guest 2"]
    assert all(t["ticket_number"].startswith(f"TKT-{event['id']}-") for t in tickets)
    assert await db.fetchval("SELECT tickets_sold FROM events WHERE id = $1", event["id"]) == 3
    assert await db.fetchval("SELECT sold FROM ticket_packages WHERE id = $1", pkg["id"]) == 3
    assert await db.fetchval("SELECT count(*) FROM order_history WHERE order_id = $1", order["id"]) == 1
    gate = await app[INVENTORY].client.hgetall(app[INVENTORY].keys.event(event["id"], "tickets"))
    assert {k.decode() for k in gate} == {t["ticket_number"] for t in tickets}
    assert msgspec.json.decode(next(iter(gate.values())), type=GateTicket).s == "valid"
    assert await app[INVENTORY].client.xlen(app[INVENTORY].keys.deliveries()) == 1
    assert await desk.round() == 0  # nothing new
    stream = app[INVENTORY].keys.event(event["id"], "orders")
    assert (await app[INVENTORY].client.xpending(stream, GROUP))["pending"] == 0


async def test_the_same_entry_delivered_twice_is_written_once(client, factory, db):
    app = client.server.app
    event, pkg, _ = await _event(client, factory)
    await _sell(app[INVENTORY], event["id"], "u:1", {pkg["id"]: 2})
    stream = app[INVENTORY].keys.event(event["id"], "orders")
    (_, fields), = await app[INVENTORY].client.xrange(stream)
    await app[INVENTORY].client.xadd(stream, fields)  # a copy of the entry
    assert await _desk(app).round() == 2
    assert await db.fetchval("SELECT count(*) FROM orders") == 1
    assert await db.fetchval("SELECT count(*) FROM tickets") == 2
    assert await db.fetchval("SELECT tickets_sold FROM events WHERE id = $1", event["id"]) == 2


@pytest.mark.parametrize("dies", ["before writing", "after writing, before acknowledging"])
async def test_a_worker_killed_mid_order_leaves_it_to_another(client, factory, db, dies):
    app = client.server.app
    event, pkg, _ = await _event(client, factory)
    await _sell(app[INVENTORY], event["id"], "u:1", {pkg["id"]: 4})
    first = _desk(app, consumer="doomed")
    await first._group(event["id"])
    stream = app[INVENTORY].keys.event(event["id"], "orders")
    (_, [(_entry_id, fields)]), = await app[INVENTORY].client.xreadgroup(
        GROUP, "doomed", {stream: ">"}, count=10)  # the doomed worker took the entry...
    if dies == "after writing, before acknowledging":
        from fulfillment.writer import read_entry, write_sale
        async with db.acquire() as conn:
            assert await write_sale(conn, read_entry(event["id"], fields))
    # ...and died. Another worker, after the idle time, claims and settles it.
    second = _desk(app, consumer="heir", claim_idle_ms=0)
    assert await second.round() == 1
    assert await db.fetchval("SELECT count(*) FROM tickets") == 4
    assert (await app[INVENTORY].client.xpending(stream, GROUP))["pending"] == 0


async def test_malformed_entries_go_to_the_dead_letters_with_their_reason(client, factory, db):
    app = client.server.app
    event, _pkg, _ = await _event(client, factory)
    inventory = app[INVENTORY]
    stream = inventory.keys.event(event["id"], "orders")
    await inventory.client.sadd(inventory.keys.selling(), event["id"])
    await inventory.client.xadd(stream, {"type": "sale", "order": "ORD-9-X", "sale": "{nope"})
    await inventory.client.xadd(stream, {"type": "refund", "order": "ORD-9-Y"})
    assert await _desk(app).round() == 2
    dead = await inventory.client.xrange(inventory.keys.dead_letters())
    reasons = [fields[b"reason"].decode() for _, fields in dead]
    assert len(reasons) == 2 and "missing" in reasons[0] or "unreadable" in reasons[0]
    assert "not a sale" in reasons[1]
    assert await db.fetchval("SELECT count(*) FROM orders") == 0
    assert (await inventory.client.xpending(stream, GROUP))["pending"] == 0


async def test_a_second_valid_ticket_for_a_seat_is_impossible(client, factory, db):
    """Were Redis ever to sell a seat twice, Postgres refuses the second ticket and the entry is
    a dead letter saying so (never a second ticket)."""
    app = client.server.app
    event, _pkg, section = await _event(client, factory, seats=2)
    seat = section["seats"][0]["id"]
    inventory = app[INVENTORY]
    await _sell(inventory, event["id"], "u:1", seat_ids=[seat], number="ORD-1-ONE")
    assert await _desk(app).round() == 1
    await inventory.unsell(event["id"], "ORD-1-ONE")  # Redis forgets the sale (a bug, say)...
    await _sell(inventory, event["id"], "u:2", seat_ids=[seat], number="ORD-1-TWO")  # ...and resells
    assert await _desk(app).round() == 1
    assert await db.fetchval("SELECT count(*) FROM tickets WHERE seat_id = $1", seat) == 1
    (_, dead), = await inventory.client.xrange(inventory.keys.dead_letters())
    assert b"already has a valid ticket" in dead[b"reason"]


class Outage:
    """A TCP proxy in front of Postgres that can be cut and restored: Postgres going away and
    coming back, as the worker's connections see it, without stopping the shared server."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.server: asyncio.Server | None = None
        self.port = 0
        self.links: set[asyncio.StreamWriter] = set()

    async def _pipe(self, reader, writer):
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _link(self, reader, writer):
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.links |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def start(self):
        self.server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self):
        self.server.close()
        await self.server.wait_closed()
        for writer in self.links:
            writer.close()
        self.links.clear()


async def test_postgres_away_for_a_while_loses_nothing(client, factory, settings):
    app = client.server.app
    event, pkg, _ = await _event(client, factory)
    from urllib.parse import urlsplit
    url = urlsplit(settings.database_url)
    host, port = url.hostname or "127.0.0.1", url.port or 5432
    if url.hostname is None:  # the embedded server listens on a Unix socket
        pytest.skip("the proxy needs Postgres on TCP (DATABASE_URL)")
    outage = Outage(host, port)
    await outage.start()
    dsn = settings.database_url.replace(f"{url.hostname}:{port}", f"127.0.0.1:{outage.port}")
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    inventory = app[INVENTORY]
    desk = Fulfillment(inventory, pool, claim_idle_ms=0,
                       after_write=Issuer(pool, inventory.client, inventory.keys))
    try:
        await outage.cut()  # Postgres goes away
        for n in range(3):
            await _sell(inventory, event["id"], f"u:{n}", {pkg["id"]: 1}, number=f"ORD-1-OUT{n}")
        for _ in range(5):  # rounds while it is away: nothing written, nothing lost, nothing dead
            assert await desk.round() == 0
        await outage.start()  # back on the same port
        written = 0
        async with asyncio.timeout(30):
            while written < 3:
                written += await desk.round()
        db = app[DB]
        assert await db.fetchval("SELECT count(*) FROM orders") == 3
        assert await inventory.client.xlen(inventory.keys.dead_letters()) == 0
    finally:
        await pool.close()
        await outage.cut()


OUTAGE_SECONDS = 30  # the figure: long enough for many rounds, pool reconnects, claims


async def test_postgres_stopped_for_30_seconds_under_the_running_worker_loses_nothing(
        client, factory, settings):
    """The worker's own loop (not hand-driven rounds) runs through a 30 s outage: orders sold
    meanwhile wait in the stream, none is dead-lettered for it, the loop survives, and all are
    written once Postgres is back."""
    app = client.server.app
    event, pkg, _ = await _event(client, factory)
    from urllib.parse import urlsplit
    url = urlsplit(settings.database_url)
    if url.hostname is None:
        pytest.skip("the proxy needs Postgres on TCP (DATABASE_URL)")
    outage = Outage(url.hostname, url.port or 5432)
    await outage.start()
    dsn = settings.database_url.replace(f"{url.hostname}:{url.port or 5432}",
                                        f"127.0.0.1:{outage.port}")
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    inventory = app[INVENTORY]
    desk = Fulfillment(inventory, pool, claim_idle_ms=0,
                       after_write=Issuer(pool, inventory.client, inventory.keys))
    stop = asyncio.Event()
    loop_task = asyncio.create_task(desk.run(stop, idle=0.1))
    try:
        await outage.cut()
        started = time.monotonic()
        for n in range(5):
            await _sell(inventory, event["id"], f"u:{n}", {pkg["id"]: 1}, number=f"ORD-1-LONG{n}")
        # the outage itself is what is tested: it lasts its length, whatever the worker does
        await asyncio.sleep(OUTAGE_SECONDS - (time.monotonic() - started))
        assert not loop_task.done(), "the worker's loop ended during the outage"
        assert await app[DB].fetchval("SELECT count(*) FROM orders") == 0
        assert await inventory.client.xlen(inventory.keys.dead_letters()) == 0
        await outage.start()
        async with asyncio.timeout(30):
            while await app[DB].fetchval("SELECT count(*) FROM orders") < 5:
                await asyncio.sleep(0.1)
        assert await app[DB].fetchval("SELECT count(*) FROM tickets") == 5
        assert await inventory.client.xlen(inventory.keys.dead_letters()) == 0
    finally:
        stop.set()
        await loop_task
        await pool.close()
        await outage.cut()


async def test_the_stream_is_trimmed_only_below_what_was_acknowledged(client, factory):
    app = client.server.app
    event, pkg, _ = await _event(client, factory, capacity=50)
    inventory = app[INVENTORY]
    stream = inventory.keys.event(event["id"], "orders")
    for n in range(5):
        await _sell(inventory, event["id"], f"u:{n}", {pkg["id"]: 1}, number=f"ORD-1-T{n}")
    desk = _desk(app)
    await desk._group(event["id"])
    await inventory.client.xreadgroup(GROUP, "slow", {stream: ">"}, count=2)  # 2 taken, not acked
    assert await desk.round() == 3  # the other three are written
    assert await inventory.client.xlen(stream) == 5  # nothing below the pending two goes
    heir = _desk(app, consumer="heir", claim_idle_ms=0)
    assert await heir.round() == 2
    await heir.round()
    assert await inventory.client.xlen(stream) <= 1  # all acknowledged: trimmed


def _worker(settings, env_extra: dict[str, str], log: Path) -> subprocess.Popen:
    """`kwika worker` as its own process, on this test's Redis prefix and database."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": settings.redis_url,
           "DATABASE_URL": settings.database_url, "KWIKA_REDIS_PREFIX": settings.redis_prefix,
           "KWIKA_SECRET_KEY": settings.secret_key, "KWIKA_MAIL": "false",
           "KWIKA_LOG_LEVEL": "WARNING", "KWIKA_LOG_JSON": "false", **env_extra}
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-c", "import sys; from kwika.cli import main; sys.exit(main(['worker']))"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=out)


async def _until(check, what: str, seconds: float = 60, poll: float = 0.02):
    """Poll `check()` until it is truthy (a condition with a deadline, not a fixed wait)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := await check():
            return value
        await asyncio.sleep(poll)
    raise AssertionError(f"{what}: not within {seconds} s")


async def test_a_worker_process_killed_mid_burst_writes_each_ticket_once(client, factory, db,
                                                                         settings, tmp_path):
    """A real `kwika worker` is SIGKILLed while it writes a burst of orders; a new one, once the
    dead one's entries have been idle `KWIKA_CLAIM_IDLE_MS`, claims them: every order and every
    ticket is written exactly once, the sold counters count each once."""
    app = client.server.app
    inventory = app[INVENTORY]
    orders = 200
    event, pkg, _ = await _event(client, factory, capacity=2 * orders)
    await asyncio.gather(*[_sell(inventory, event["id"], f"u:{n}", {pkg["id"]: 2},
                                 number=f"ORD-1-K{n:04d}") for n in range(orders)])
    count = "SELECT count(*) FROM orders WHERE event_id = $1"
    first = _worker(settings, {"KWIKA_CLAIM_IDLE_MS": "300"}, tmp_path / "worker.log")
    try:
        await _until(lambda: db.fetchval(count, event["id"]), "the first worker writes")
        first.kill()  # SIGKILL: no cleanup, its entries stay pending
        first.wait(10)
        written = await db.fetchval(count, event["id"])
        assert 0 < written < orders, f"killed after {written} of {orders}: not mid-burst"
        second = _worker(settings, {"KWIKA_CLAIM_IDLE_MS": "300"}, tmp_path / "worker.log")
        try:
            await _until(lambda: _all_written(db, inventory, event["id"], orders),
                         "the second worker finishes the burst")
        finally:
            second.terminate()
            second.wait(20)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)
    assert await db.fetchval(count, event["id"]) == orders
    assert await db.fetchval("SELECT count(*) FROM tickets WHERE event_id = $1", event["id"]) == 2 * orders
    assert await db.fetchval("SELECT count(*) FROM orders o WHERE o.event_id = $1 AND (SELECT count(*) "
                             "FROM tickets t WHERE t.order_id = o.id) <> 2", event["id"]) == 0
    assert await db.fetchval("SELECT tickets_sold FROM events WHERE id = $1", event["id"]) == 2 * orders
    assert await db.fetchval("SELECT sold FROM ticket_packages WHERE id = $1", pkg["id"]) == 2 * orders
    assert await inventory.client.xlen(inventory.keys.dead_letters()) == 0


async def _all_written(db, inventory, event_id: int, orders: int) -> bool:
    stream = inventory.keys.event(event_id, "orders")
    return (await db.fetchval("SELECT count(*) FROM orders WHERE event_id = $1", event_id) == orders
            and (await inventory.client.xpending(stream, GROUP))["pending"] == 0)
