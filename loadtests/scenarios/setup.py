"""What each scenario needs in a fresh Kwika, made through its provider API as a promoter would
(the provider's verification, an admin's job, is set in the database)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
import redis.asyncio as redis

from engine.db import create_pool
from engine.inventory import Inventory
from engine.keys import Keys
from engine.orders import Billing, SaleRecord, new_order_number
from engine.tickets import Keyring, TicketClaims, sign_ticket
from loadtests.bench_http import _call, _make_provider
from loadtests.common import free_port, wait_ready

GA_PACKAGES = (("VIP", 0.1, 60_000), ("General Admission", 0.6, 25_000), ("Early Bird", 0.3, 15_000))


def _event(stack, token: str, title: str, **extra) -> dict:
    starts = datetime.now(UTC) + timedelta(days=30)
    return _call(stack.base, "POST", "/api/provider/events", {
        "title": f"{title} {uuid.uuid4().hex[:4]}", "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=6)).isoformat(), **extra}, token)


def ga_event(stack, token: str, tickets: int) -> dict:
    """An event of `tickets` tickets in three packages, published."""
    ev = _event(stack, token, "Load Rush")
    packages = []
    for name, share, price in GA_PACKAGES:
        pkg = _call(stack.base, "POST", f"/api/provider/events/{ev['id']}/packages", {
            "name": name, "price": price, "capacity": round(tickets * share),
            "max_per_order": 4}, token)
        packages.append({"id": pkg["id"], "name": name, "capacity": pkg["capacity"],
                         "weight": share})
    _call(stack.base, "POST", f"/api/provider/events/{ev['id']}/publish", None, token)
    return {"id": ev["id"], "slug": ev["slug"], "packages": packages, "tickets": tickets}


def room_on(stack, token: str, event_id: int, *, rate: float, difficulty: int,
            release_in: float) -> dict:
    release = datetime.now(UTC) + timedelta(seconds=release_in)
    return _call(stack.base, "PATCH", f"/api/provider/events/{event_id}/room", {
        "enabled": True, "rate_per_second": rate, "difficulty": difficulty,
        "release_at": release.isoformat(), "pass_seconds": 300}, token)


def ga_rush(stack, plan: dict) -> dict:
    """1,000 tickets (300 in --short) in three packages; the room on, opening a few seconds after
    the spike has arrived (so the first arrivals form a pre-queue), admitting tickets/10 a second."""
    tickets = plan.get("tickets") or (300 if plan["short"] else 1000)
    token = _make_provider(stack.database_url, stack.base)
    event = ga_event(stack, token, tickets)
    rate = plan.get("rate") or max(20.0, tickets / 10)
    difficulty = plan.get("difficulty", 8)
    room_on(stack, token, event["id"], rate=rate, difficulty=difficulty,
            release_in=plan["spawn_seconds"] + 5)
    plan.update(tickets=tickets, rate=rate, difficulty=difficulty)
    return {"event": event, "room": True, "users": plan["users"], "seconds": plan["seconds"],
            "spawn_seconds": plan["spawn_seconds"], "event_ids": [event["id"]], "token": token}


def bots(stack, plan: dict) -> dict:
    """The GA rush, its clients a tenth bots (the Locust file's weights)."""
    config = ga_rush(stack, plan)
    plan["words_extra"] = ("A tenth of the clients are bots: one address each, a new identity "
                           "as often as the room gives one, no pages, no pauses.")
    return config


def mixed_day(stack, plan: dict, accounts: int = 10) -> dict:
    """The GA rush, and buyer accounts for the visitors who read My tickets."""
    config = ga_rush(stack, plan)
    made = []
    for i in range(accounts):
        email = f"holder-{i}-{uuid.uuid4().hex[:6]}@load.test"
        _call(stack.base, "POST", "/api/auth/register", {
            "email": email, "name": f"Holder {i}", "password": "load-password-42",
            "account_type": "buyer"})
        made.append({"email": email, "password": "load-password-42"})
    plan["words_extra"] = ("Half the users buy; the others browse, search, read My tickets "
                           "(signed in) and watch the queue page.")
    return {**config, "accounts": made}


# (name, price, rows, seats per row, rows in --short, seats per row in --short); listed front
# first: the seat map's order, which best available reads as best first
SEAT_SECTIONS = (("Front", 80_000, 10, 20, 4, 15), ("Back", 20_000, 20, 40, 8, 30))


def seated_event(stack, token: str, short: bool) -> dict:
    """A published seated event: each section its own package (so its own price), seated in a
    grid (rows A, B, …), the front section first."""
    ev = _event(stack, token, "Load Seats", requires_seating=True)
    sections = []
    for order, (name, price, rows, per_row, short_rows, short_per_row) in enumerate(SEAT_SECTIONS):
        if short:
            rows, per_row = short_rows, short_per_row
        pkg = _call(stack.base, "POST", f"/api/provider/events/{ev['id']}/packages", {
            "name": name, "price": price, "capacity": rows * per_row, "max_per_order": 4,
            "sort_order": order}, token)
        sec = _call(stack.base, "POST", f"/api/provider/events/{ev['id']}/sections", {
            "name": name, "package_id": pkg["id"], "numbering_type": "grid", "rows": rows,
            "seats_per_row": per_row, "sort_order": order}, token)
        sections.append({"id": sec["id"], "name": name, "package_id": pkg["id"],
                         "seats": sec["capacity"], "rows": rows, "price": price})
    _call(stack.base, "POST", f"/api/provider/events/{ev['id']}/publish", None, token)
    return {"id": ev["id"], "slug": ev["slug"], "sections": sections,
            "front": sections[0]["id"], "back": sections[1]["id"]}


def seat_rush(stack, plan: dict) -> dict:
    """A seated event whose best seats are plain: a Front section of 200 seats (60 in --short)
    in a package of its own at four times the Back's price, and a Back of 800 (240). Buyers race
    for the front from the live seat map or best available.

    The waiting room is off: what this scenario loads is the race for the same few seats (a
    stale seat map, a seat taken between looking and holding, the retry); a room admitting at a
    steady rate would space the buyers out and hide that race, and the GA rush already puts the
    room under a spike."""
    token = _make_provider(stack.database_url, stack.base)
    event = seated_event(stack, token, plan["short"])
    front, back = event["sections"]
    plan.update(front_seats=front["seats"], back_seats=back["seats"], tickets=front["seats"] + back["seats"])
    plan["words"] = (
        f"A seated event: Front {front['seats']:,} seats ({front['rows']} rows) and Back "
        f"{back['seats']:,} ({back['rows']} rows), each its own package. Half the buyers pick 1–4 "
        f"seats side by side from the live seat map, half ask for best available in the Front; "
        f"a seat taken meanwhile means a fresh map and another try (at most 5), and once the "
        f"Front has nothing for them some take the Back and the rest leave. No waiting room: "
        f"the buyers race for the same seats directly.")
    return {"event": event, "room": False, "users": plan["users"], "seconds": plan["seconds"],
            "spawn_seconds": plan["spawn_seconds"], "event_ids": [event["id"]], "token": token,
            "seated": True}


GATE_ORDER = 1000  # tickets per order: a package's max_per_order and a hold line's bound
GATES = ("North 1", "North 2", "North 3", "South 1", "South 2", "East", "West", "VIP")


def gate_rush(stack, plan: dict) -> dict:
    """10,000 issued tickets (2,000 in --short) of one package, for the scanners to check in.

    The tickets are sold the engine's way, without buyers or payments: the setup holds them
    (scripts/lua/hold.lua) and confirms each hold as an order (scripts/lua/confirm.lua) in
    orders of 1,000, in this process, so Redis has them sold (stock, sales, buyer counts) exactly
    as a sale leaves them; the stack's own worker then writes each order to Postgres
    (fulfillment/writer.py: order, tickets, history, counters) and registers its tickets for the
    gate (fulfillment/issuing.py). So the verifier's checks (Redis sold against Postgres tickets,
    `kwika audit`'s sales against orders, the register against the tickets table) hold by
    construction rather than by a copy of the engine's key layout, as bench_scan's direct COPY
    would need. The one step left out is the tickets email: rendering 10,000 tickets' PDFs
    (~60 ms each, loadtests/reports/tickets.md) would take the shared cores for minutes, and on
    the day of the event the tickets went out long ago; the scenario runs `kwika up` with
    KWIKA_MAIL=false, so the orders' deliveries wait, unsent, in their stream (one entry an
    order; /metrics does not gauge that stream). Once Postgres and the register have every
    ticket, each one's code is signed with the stack's keys (`KWIKA_TICKET_SIGNING_KEYS`), at
    the generation the record gave it, as the PDF would carry it.
    """
    tickets = plan.get("tickets") or (2_000 if plan["short"] else 10_000)
    token = _make_provider(stack.database_url, stack.base)
    ev = _event(stack, token, "Gate Rush", max_tickets_per_buyer=GATE_ORDER)
    pkg = _call(stack.base, "POST", f"/api/provider/events/{ev['id']}/packages", {
        "name": "General Admission", "price": 10_000, "capacity": tickets,
        "max_per_order": GATE_ORDER}, token)
    _call(stack.base, "POST", f"/api/provider/events/{ev['id']}/publish", None, token)
    codes = asyncio.run(_issue(stack, ev["id"], pkg["id"], tickets))
    repeats, forged = plan.get("repeats", 0.05), plan.get("forged", 0.01)
    users, seconds, spawn = plan["users"], plan["seconds"], plan["spawn_seconds"]
    # a person at a gate, paced so the last share is scanned a while before the load stops:
    # a scanner's mean pause between scans is the time left after the arrival, less a tail, over
    # its share of scans (fresh, plus the repeats and forgeries among them)
    scans_each = tickets / users / (1 - repeats - forged)
    pause = max(0.05, (seconds - spawn - max(5.0, 0.15 * seconds)) / scans_each)
    plan.update(tickets=tickets, pause=pause, words=(
        f"{tickets:,} tickets issued (sold in orders of {GATE_ORDER:,} through the hold and "
        f"confirm scripts, written and registered by the worker; no emails) are checked in by "
        f"{users:,} scanners at {len(GATES)} gates, each a person scanning about every "
        f"{pause:.2f} s (0.5-1.5 × that, at random). Each fresh ticket is scanned first by one "
        f"scanner only (the codes are split among the Locust processes, then taken in turn by "
        f"its scanners); {repeats:.0%} of scans are a repeat of a ticket the scanner let in "
        f"(`repeat` or `used` expected), {forged:.0%} a real code with its signature altered "
        f"(`forged` expected). Any other answer fails the request."))
    return {"event": {"id": ev["id"], "slug": ev["slug"], "package_id": pkg["id"]},
            "event_ids": [ev["id"]], "token": token, "codes": codes, "gates": list(GATES),
            "users": users, "seconds": seconds, "spawn_seconds": spawn,
            "processes": plan["processes"], "pause_s": pause, "repeats": repeats,
            "forged": forged}


async def _issue(stack, event_id: int, package_id: int, count: int,
                 within: float = 180.0) -> list[str]:
    """Sell `count` tickets of `package_id` in orders of GATE_ORDER (hold, then confirm), wait for
    the worker to write and register them all, and return their signed codes."""
    client = redis.Redis.from_url(stack.redis_url)
    keys = Keys(stack.prefix)
    inventory = Inventory(client, keys, 900)
    billing = Billing(name="Gate Rush Guest", email="guest@load.test")
    try:
        left, n = count, 0
        while left:
            quantity = min(GATE_ORDER, left)
            buyer = f"g:gaterush-{n}"
            hold = await inventory.hold(event_id, buyer, {package_id: quantity})
            number = new_order_number()
            record = SaleRecord(order_number=number, hold_id=hold.id, buyer=buyer,
                                ga=[(i.package_id, i.quantity, i.unit_price) for i in hold.items],
                                seats=[], attendees=[], billing=billing, subtotal=hold.total,
                                fees=0, total=hold.total, currency="MWK")
            await inventory.confirm(event_id, hold, number, msgspec.to_builtins(record))
            left -= quantity
            n += 1
        pool = await create_pool(stack.database_url, 1, 2)
        try:
            deadline = time.monotonic() + within
            while True:
                written = await pool.fetchval(
                    "SELECT count(*) FROM tickets WHERE event_id = $1", event_id)
                registered = await client.hlen(keys.event(event_id, "tickets"))
                if written == registered == count:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"gate-rush setup: after {within:g} s the worker has written "
                                     f"{written} and registered {registered} of {count} tickets")
                await asyncio.sleep(0.5)
            rows = await pool.fetch("SELECT ticket_number, generation FROM tickets "
                                    "WHERE event_id = $1 AND status = 'valid'", event_id)
        finally:
            await pool.close()
    finally:
        await inventory.close()
        await client.aclose()
    keyring = Keyring.parse(stack.signing_keys)
    codes = [sign_ticket(keyring, TicketClaims(ticket_number=r["ticket_number"], event_id=event_id,
                                               generation=r["generation"])) for r in rows]
    random.shuffle(codes)
    return codes


def hold_rush(stack, plan: dict) -> dict:
    """1,000 tickets in three packages, no waiting room: the hold step alone, as the baseline."""
    tickets = plan.get("tickets") or (300 if plan["short"] else 1000)
    token = _make_provider(stack.database_url, stack.base)
    event = ga_event(stack, token, tickets)
    plan.update(tickets=tickets, words=(
        f"{tickets:,} tickets in three packages, no waiting room; each buyer tries to hold 1-4 "
        f"tickets until one hold is made, again 0.5-1.5 s after each refusal. Against Kwika."))
    return {"event": event, "room": False, "users": plan["users"], "seconds": plan["seconds"],
            "spawn_seconds": plan["spawn_seconds"], "event_ids": [event["id"]]}


def pg_baseline(stack, plan: dict) -> dict:
    """The same stock as `hold_rush` in rows of the run's database, served by
    loadtests/pg_server.py (as many processes as Kwika's) on a port of its own."""
    tickets = plan.get("tickets") or (300 if plan["short"] else 1000)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "loadtests.pg_server", "--dsn",
                               stack.database_url, "--port", str(port), "--workers",
                               str(stack.workers)], start_new_session=True)
    # its own process group (start_new_session): stopping it stops the processes it forked
    stack.cleanup.insert(0, lambda: (os.killpg(server.pid, signal.SIGTERM), server.wait(30)))
    wait_ready(f"http://127.0.0.1:{port}", within=60)
    packages = []

    async def stock() -> None:
        conn = await asyncpg.connect(stack.database_url)
        for i, (name, share, _price) in enumerate(GA_PACKAGES, start=1):
            capacity = round(tickets * share)
            await conn.execute("INSERT INTO bench_stock VALUES ($1, $2, $2)", i, capacity)
            packages.append({"id": i, "name": name, "capacity": capacity, "weight": share})
        await conn.close()

    asyncio.run(stock())
    plan.update(tickets=tickets, words=(
        f"{tickets:,} tickets in three packages as rows of PostgreSQL, each hold an UPDATE of its "
        f"package's row (`remaining >= q`) and an INSERT in one transaction, served by aiohttp "
        f"on {stack.workers} processes (loadtests/pg_server.py); the same buyers as `hold-rush`."))
    return {"event": {"id": 1, "slug": "baseline", "packages": packages}, "room": False,
            "users": plan["users"], "seconds": plan["seconds"],
            "spawn_seconds": plan["spawn_seconds"], "event_ids": [],
            "host": f"http://127.0.0.1:{port}", "baseline": True}
