"""The post-run verifier (real Redis and Postgres): a clean sale passes, and each check fails on
a state broken on purpose."""
# ruff: noqa: F811  (fixtures imported by name)

from __future__ import annotations

import msgspec
import pytest

from fulfillment.checkins import CheckinWriter
from loadtests import verify as v
from storefront.appkeys import DB, INVENTORY, KEYS, REDIS
from tests.gate_helpers import client, sell_event  # noqa: F401

ORDER = "ORD-1-GATE"


@pytest.fixture
async def sale(client, factory):
    """An event with one order of 3 tickets written by fulfillment, its payment succeeded and
    its tickets email sent, one ticket checked in at the gate and written back, and another
    buyer's live hold."""
    app = client.server.app
    sold = await sell_event(client, factory, tickets=3, order=ORDER)
    db = app[DB]
    hold_id = await db.fetchval("SELECT hold_id FROM orders WHERE order_number = $1", ORDER)
    await db.execute(
        "INSERT INTO payments (reference, gateway, order_number, event_id, hold_id, amount, "
        "currency, state, succeeded_at) VALUES ($1, 'sandbox', $2, $3, $4, 15000, 'MWK', "
        "'succeeded', now())", f"{ORDER}-PAY", ORDER, sold.event_id, hold_id)
    await db.execute(
        "INSERT INTO email_log (kind, dedupe_key, order_number, to_address, status, message_id, "
        "sent_at) VALUES ('tickets', $1, $1, 'buyer@example.test', 'sent', '<m@x>', now())",
        ORDER)
    scan = await client.post("/api/scan", headers=sold.provider.h,
                             json={"event_id": sold.event_id, "code": sold.code(0), "gate": "N"})
    assert (await scan.json())["result"] == "admitted"
    assert await CheckinWriter(app[REDIS], app[KEYS], db).round() == 1
    buyer = await factory.user()
    held = await client.post(f"/api/events/{sold.event_id}/holds", headers=buyer.h,
                             json={"items": [{"package_id": sold.package["id"], "quantity": 1}]})
    assert held.status == 201
    return sold


async def run(client, sold) -> list[str]:
    app = client.server.app
    return await v.verify(app[INVENTORY], app[DB], [sold.event_id])


async def test_a_clean_sale_passes(client, sale):
    assert await run(client, sale) == []


async def test_the_command_exits_zero_then_one(client, sale, settings, monkeypatch):
    for name, value in (("REDIS_URL", settings.redis_url), ("DATABASE_URL", settings.database_url),
                        ("KWIKA_REDIS_PREFIX", settings.redis_prefix),
                        ("KWIKA_SECRET_KEY", settings.secret_key)):
        monkeypatch.setenv(name, value)
    assert await v._main([sale.event_id], 1.0) == 0
    await client.server.app[DB].execute("DELETE FROM email_log")
    assert await v._main([sale.event_id], 1.0) == 1


async def test_an_unknown_event_is_a_failure(client, sale):
    app = client.server.app
    assert await v.verify(app[INVENTORY], app[DB], [sale.event_id + 1000]) == [
        f"event {sale.event_id + 1000}: not in the catalog (a wrong id verifies nothing)"]


def _has(problems: list[str], words: str) -> None:
    assert any(words in p for p in problems), problems


async def test_an_extra_ticket_row(client, sale):
    await client.server.app[DB].execute(
        "INSERT INTO tickets (ticket_number, order_id, event_id, package_id, price, "
        "attendee_name, attendee_email) SELECT ticket_number || 'X', order_id, event_id, "
        "package_id, price, attendee_name, attendee_email FROM tickets LIMIT 1")
    _has(await run(client, sale), "Redis sold 3, Postgres has 4 tickets")


async def test_seats_the_catalog_sold_elsewhere_are_no_tickets(client, sale):
    inventory = client.server.app[INVENTORY]
    pid = sale.package["id"]
    await inventory.client.hset(inventory.keys.event(sale.event_id, "seats"), "901", "s:catalog")
    await inventory.client.hset(inventory.keys.event(sale.event_id, "seatinfo"), "901",
                                msgspec.json.encode({"p": pid, "price": 0}))
    await inventory.client.hincrby(inventory.keys.event(sale.event_id, "stock"), f"{pid}:sold", 1)
    assert await v.tickets_against_stock(inventory, client.server.app[DB], sale.event_id) == []
    await inventory.client.hincrby(inventory.keys.event(sale.event_id, "stock"), f"{pid}:sold", 1)
    _has(await v.tickets_against_stock(inventory, client.server.app[DB], sale.event_id),
         "Redis sold 4, Postgres has 3 tickets")


async def test_more_tickets_than_capacity(client, sale):
    await client.server.app[DB].execute("UPDATE ticket_packages SET capacity = 2")
    _has(await run(client, sale), "3 tickets issued, capacity 2")


async def test_a_seat_with_two_tickets(client, sale):
    # the unique index forbids it: dropped inside a transaction that is rolled back
    async with client.server.app[DB].acquire() as conn:
        tr = conn.transaction()
        await tr.start()
        try:
            await conn.execute("SET LOCAL session_replication_role = replica")  # no FK checks
            await conn.execute("DROP INDEX tickets_one_per_seat")
            await conn.execute("UPDATE tickets SET seat_id = 999 WHERE ticket_number <> ''")
            problems = await v.seats_sold_twice(conn, sale.event_id)
        finally:
            await tr.rollback()
    _has(problems, "seat 999 has 3 tickets")


async def test_a_doubled_payment(client, sale):
    db = client.server.app[DB]
    await db.execute(
        "INSERT INTO payments (reference, gateway, order_number, event_id, hold_id, amount, "
        "currency, state) SELECT reference || '-2', gateway, 'ORD-2-TWICE', event_id, hold_id, "
        "amount, currency, 'succeeded' FROM payments")
    problems = await run(client, sale)
    _has(problems, "was paid 2 times")
    _has(problems, "(order ORD-2-TWICE) has 0 orders, not one")


async def test_a_payment_without_its_email_or_tickets(client, sale):
    db = client.server.app[DB]
    await db.execute("UPDATE email_log SET status = 'retrying'")
    await db.execute("UPDATE tickets SET status = 'cancelled'")
    problems = await run(client, sale)
    _has(problems, "its tickets email is retrying, not sent")
    _has(problems, "its order has no valid tickets")


async def test_a_stale_hold(client, sale):
    inventory = client.server.app[INVENTORY]
    key = inventory.keys.event(sale.event_id, "holds")
    (hold_id, raw), = (await inventory.client.hgetall(key)).items()
    seconds, _ = await inventory.client.time()
    hold = msgspec.json.decode(raw)
    hold["expires"] = (seconds - 30) * 1000
    await inventory.client.hset(key, hold_id, msgspec.json.encode(hold))
    _has(await run(client, sale), "1 live hold(s) outlived their expiry")


async def test_a_doubled_checkin(client, sale):
    await client.server.app[DB].execute(
        "INSERT INTO checkins (event_id, entry_id, ticket_number, action, gate, by_who, at) "
        "SELECT event_id, entry_id || '-2', ticket_number, 'in', gate, by_who, at FROM checkins")
    _has(await run(client, sale), "checked in twice in the log without an undo")


async def test_a_checkin_the_counts_miss(client, sale):
    inventory = client.server.app[INVENTORY]
    await inventory.client.hincrby(inventory.keys.event(sale.event_id, "checkin:counts"), "in", 1)
    _has(await run(client, sale), "the gate counts say 2 checked in, the register has 1")


async def test_an_audit_problem(client, sale):
    inventory = client.server.app[INVENTORY]
    await inventory.client.hincrby(inventory.keys.event(sale.event_id, "stock"),
                                   f"{sale.package['id']}:avail", 1)
    problems = await run(client, sale)
    assert any(p.startswith(f"event {sale.event_id}: audit: ") for p in problems), problems
