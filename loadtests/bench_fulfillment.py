"""Fulfillment: tickets issued per second by one worker, and purchase-to-inbox latency for a
burst of orders bought through the sandbox gateway. `kwika serve --workers 2` against a private
redis-server and a database of its own; the SMTP server is an aiosmtpd server in this process
(as the development mailbox of `kwika up` is), which notes when each message arrived.

    .venv/bin/python -m loadtests.bench_fulfillment [--burst 1000] [--issue 60] [--buyers 100]

1. Issuing rate: `--issue` orders (one ticket each) are bought over HTTP (hold, checkout,
   sandbox payment, its webhook) with no worker running, so they wait in the event's orders
   stream. Then the worker's own loops run in this process, as `kwika worker` runs them
   (`run_fulfillment`; `mail_worker(settings, ...)` with the real settings: its ticket process
   pool, the email log, SMTP): timed from their start to the last ticket email's arrival. Each
   stage is timed where it runs (the functions are wrapped, not changed): the Postgres write,
   the gate register and delivery queue, loading the order, signing the payloads, the PDF
   render (in the pool), composing, and the SMTP sends (tickets and the provider's notice).
2. Purchase-to-inbox: `kwika worker` as a subprocess (one process), then `--burst` purchases over
   HTTP by `--buyers` concurrent guests. Latency is from the sale's confirmation (the order's
   `sold_at`: Redis's clock when the webhook's settle ran the confirm script) to the ticket
   email's arrival at the SMTP server, matched by the order number in its PDF's name.
3. Books: every paid order written once, one ticket each, one ticket email and one provider
   notice per order (in the email log and at the server), no dead letters, `kwika audit` clean.

Writes loadtests/reports/fulfillment.md.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
from aiosmtpd.controller import Controller

from engine.tickets import Keyring
from kwika.cli import _uvloop
from loadtests.bench_http import _event, _make_provider
from loadtests.bench_purchase import Stats, purchase
from loadtests.common import REPORTS, PrivateRedis, free_port, wait_ready

TICKETS = re.compile(rb'filename="?tickets-(ORD-[0-9]+-[0-9A-F]+)\.pdf')
NOTICE = re.compile(rb"^Subject: New sale.*?\((ORD-[0-9]+-[0-9A-F]+)\)", re.MULTILINE | re.DOTALL)


NOTES = [
    "Reading it: the mail loop handles up to KWIKA_MAIL_CONCURRENCY deliveries entries at once",
    "(default the render pool's size, at least 2: here 2), each in a task of its own, so the",
    "pool's two processes render two orders side by side; the stage times above are summed over",
    "overlapping calls, so their shares can add up to more than the run. The fulfillment loop",
    "still writes far faster than the mail loop sends, so in a burst the orders are in Postgres",
    "(and at the gate, and on My tickets) within seconds and the emails queue behind the renders:",
    "an order's purchase-to-inbox time is about its place in the queue divided by the worker's",
    "rate. On 2 shared cores the render processes compete with the server, the buyers and",
    "Postgres, so two renders at once are not twice one; more cores (or workers) are how it goes",
    "faster still.",
]


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


class Inbox:
    """aiosmtpd handler: notes each message's arrival time by kind and order number."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tickets: dict[str, list[float]] = defaultdict(list)
        self.notices: Counter[str] = Counter()
        self.other = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        at = time.time()
        raw = envelope.original_content or b""
        found = TICKETS.search(raw)
        with self.lock:
            if found:
                self.tickets[found.group(1).decode()].append(at)
            elif notice := NOTICE.search(raw[:4000]):
                self.notices[notice.group(1).decode()] += 1
            else:
                self.other += 1
        return "250 OK queued"

    def arrived(self, orders: set[str]) -> int:
        with self.lock:
            return sum(1 for o in orders if self.tickets.get(o))


class StageClock:
    """Wraps the worker's functions to time each stage (total seconds and calls)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self.undo: list = []

    def wrap(self, owner, name: str, stage: str) -> None:
        original = getattr(owner, name)
        if asyncio.iscoroutinefunction(original):
            @functools.wraps(original)
            async def timed(*a, **kw):
                t0 = time.perf_counter()
                try:
                    return await original(*a, **kw)
                finally:
                    self.seconds[stage] += time.perf_counter() - t0
                    self.calls[stage] += 1
        else:
            @functools.wraps(original)
            def timed(*a, **kw):
                t0 = time.perf_counter()
                try:
                    return original(*a, **kw)
                finally:
                    self.seconds[stage] += time.perf_counter() - t0
                    self.calls[stage] += 1
        setattr(owner, name, timed)
        self.undo.append((owner, name, original))

    def restore(self) -> None:
        for owner, name, original in reversed(self.undo):
            setattr(owner, name, original)


async def buy(base: str, event_id: int, package_id: int, count: int, buyers: int) -> tuple[Stats, float]:
    """`count` purchases (one ticket each, a fresh guest each) by `buyers` concurrent clients."""
    stats = Stats()
    left = [count]
    connector = aiohttp.TCPConnector(limit=0)

    async def buyer() -> None:
        while left[0] > 0:
            left[0] -= 1
            for _ in range(5):
                async with aiohttp.ClientSession(
                        connector=connector, connector_owner=False,
                        cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
                    try:
                        if await purchase(session, base, event_id, package_id, stats):
                            break
                    except (TimeoutError, aiohttp.ClientError, KeyError, AttributeError) as exc:
                        stats.errors.append(f"{type(exc).__name__}: {exc}")

    t0 = time.perf_counter()
    await asyncio.gather(*[buyer() for _ in range(min(buyers, count))])
    took = time.perf_counter() - t0
    await connector.close()
    return stats, took


async def orders_of(dsn: str, event_id: int) -> dict[str, float]:
    """Order number -> sold_at (epoch seconds) of the event's orders in Postgres."""
    conn = await asyncpg.connect(dsn)
    rows = await conn.fetch("SELECT order_number, sold_at FROM orders WHERE event_id = $1", event_id)
    await conn.close()
    return {r["order_number"]: r["sold_at"].timestamp() for r in rows}


async def paid_orders(dsn: str, event_id: int) -> set[str]:
    conn = await asyncpg.connect(dsn)
    rows = await conn.fetch("SELECT order_number FROM payments WHERE state = 'succeeded' "
                            "AND event_id = $1", event_id)
    await conn.close()
    return {r["order_number"] for r in rows}


async def wait_for(predicate, timeout: float, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(every)
    return False


async def issue_in_process(env: dict, dsn: str, event_id: int, inbox: Inbox,
                           orders: set[str]) -> dict:
    """The worker's loops, run here on the orders waiting in the stream; stage timings."""
    import redis.asyncio as redis

    import fulfillment.consumer
    import fulfillment.mail.desk
    import fulfillment.mail.postman
    from engine.db import create_pool
    from engine.inventory import Inventory
    from engine.keys import Keys
    from engine.settings import load_settings
    from engine.tickets.store import TicketRenderer
    from fulfillment.issuing import Issuer
    from fulfillment.mail.smtp import SmtpMailer
    from fulfillment.mail.worker import mail_worker
    from fulfillment.worker import run_fulfillment

    settings = load_settings(env)
    clock = StageClock()
    clock.wrap(fulfillment.consumer, "write_sale", "write (Postgres transaction)")
    clock.wrap(Issuer, "__call__", "gate register + delivery queued")
    clock.wrap(fulfillment.mail.desk, "load_order", "load order (mail)")
    clock.wrap(fulfillment.mail.desk, "order_doc", "sign (order document)")
    clock.wrap(TicketRenderer, "render", "PDF render (pool)")
    clock.wrap(fulfillment.mail.postman, "compose", "compose message")
    clock.wrap(SmtpMailer, "send", "SMTP send")
    client = redis.Redis.from_url(settings.redis_url)
    pool = await create_pool(settings.database_url, 1, 4)  # as `kwika worker`
    inventory = Inventory(client, Keys(settings.redis_prefix), settings.hold_ttl_seconds)
    worker = mail_worker(settings, pool, client, inventory.keys)
    await worker.renderer.start()  # a running worker's pool is up before a burst comes
    stop = asyncio.Event()
    written_at: list[float] = []

    async def written() -> bool:
        if not written_at and clock.calls["gate register + delivery queued"] >= len(orders):
            written_at.append(time.perf_counter())
        return inbox.arrived(orders) >= len(orders)

    start_load = load()
    t0 = time.perf_counter()
    cpu0 = os.times()
    tasks = [asyncio.create_task(run_fulfillment(inventory, pool, stop,
                                                 claim_idle_ms=settings.fulfillment_claim_idle_ms)),
             asyncio.create_task(worker.run(stop))]
    done = await wait_for(written, 600, 0.02)
    took = time.perf_counter() - t0
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)  # the render pool closed: its CPU counts
    cpu = os.times()
    clock.restore()
    await inventory.close()
    await pool.close()
    await client.aclose()
    assert done, f"only {inbox.arrived(orders)} of {len(orders)} ticket emails arrived"
    return {"orders": len(orders), "seconds": took,
            "written_after": (written_at[0] - t0) if written_at else float("nan"),
            "cpu": (cpu.user - cpu0.user) + (cpu.system - cpu0.system),
            "children_cpu": (cpu.children_user - cpu0.children_user
                             + cpu.children_system - cpu0.children_system),
            "stages": dict(clock.seconds), "calls": dict(clock.calls),
            "load": (start_load, load()), "render_workers": worker.renderer.workers}


async def books(dsn: str, event_ids: list[int], redis_url: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    problems = []
    for ev in event_ids:
        paid = await conn.fetchval("SELECT count(*) FROM payments WHERE state = 'succeeded' AND "
                                   "event_id = $1", ev)
        written = await conn.fetchval("SELECT count(*) FROM orders WHERE event_id = $1", ev)
        unpaid = await conn.fetchval(
            "SELECT count(*) FROM orders o WHERE event_id = $1 AND NOT EXISTS (SELECT 1 FROM "
            "payments p WHERE p.order_number = o.order_number AND p.state = 'succeeded')", ev)
        tickets = await conn.fetchval("SELECT count(*) FROM tickets WHERE event_id = $1", ev)
        per_order = await conn.fetchval(
            "SELECT count(*) FROM (SELECT order_id FROM tickets WHERE event_id = $1 GROUP BY "
            "order_id HAVING count(*) <> 1) x", ev)
        sold = await conn.fetchval("SELECT tickets_sold FROM events WHERE id = $1", ev)
        if not (paid == written == tickets == sold) or unpaid or per_order:
            problems.append(f"event {ev}: {paid} paid, {written} orders, {tickets} tickets, "
                            f"tickets_sold {sold}, {unpaid} unpaid orders, {per_order} orders "
                            "without exactly one ticket")
    mails = await conn.fetch("SELECT kind, status, count(*) AS n, sum(attempts) AS tries FROM "
                             "email_log GROUP BY kind, status")
    await conn.close()
    import redis
    client = redis.Redis.from_url(redis_url)
    dead = sum(client.xlen(k) for k in client.scan_iter(match="*dead*") if client.type(k) == b"stream")
    client.close()
    if dead:
        problems.append(f"{dead} dead letters")
    return problems + ["email log: " + ", ".join(
        f"{r['kind']} {r['status']} {r['n']} ({r['tries']} tries)" for r in mails)]


def pct(data: list[float], q: float) -> float:
    data = sorted(data)
    return data[min(len(data) - 1, int(q * len(data)))] if data else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--issue", type=int, default=60)
    parser.add_argument("--buyers", type=int, default=100)
    parser.add_argument("--database-url", default=os.environ.get(
        "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    started, start_load = datetime.now(UTC), load()
    wall0 = time.monotonic()
    redis_server = PrivateRedis()
    db = f"kwika_bench_{uuid.uuid4().hex[:6]}"
    data_dir = tempfile.mkdtemp(prefix="kwika-fbench-")

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(args.database_url)
        await conn.execute(sql)
        await conn.close()

    inbox = Inbox()
    smtp_port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port, ready_timeout=10,
                      data_size_limit=25 * 1024 * 1024)
    smtp.start()
    asyncio.run(admin(f'CREATE DATABASE "{db}"'))
    dsn = args.database_url.rsplit("/", 1)[0] + "/" + db
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_server.url, "DATABASE_URL": dsn, "KWIKA_PORT": str(port),
           "KWIKA_WORKERS": "2", "KWIKA_LOG_LEVEL": "WARNING", "KWIKA_DATA_DIR": data_dir,
           "KWIKA_SECRET_KEY": "bench-secret-key-0123456789", "KWIKA_REDIS_MAX_CONNECTIONS": "200",
           "KWIKA_SANDBOX": "true", "KWIKA_SANDBOX_SETTLE_MS": "200",
           "KWIKA_HOLDS_PER_IP_PER_MINUTE": "1000000", "KWIKA_GUESTS_PER_IP_PER_MINUTE": "1000000",
           "KWIKA_PUBLIC_URL": f"http://127.0.0.1:{port}",
           "KWIKA_TICKET_SIGNING_KEYS": Keyring.generate("B1").to_text(),
           "KWIKA_SMTP_HOST": "127.0.0.1", "KWIKA_SMTP_PORT": str(smtp_port),
           "KWIKA_SMTP_SECURITY": "none",
           "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
    kwika = str(Path(sys.executable).parent / "kwika")
    subprocess.run([kwika, "migrate"], env=env, check=True)
    server = subprocess.Popen([kwika, "serve"], env=env)
    worker = None
    base = f"http://127.0.0.1:{port}"
    event_ids: list[int] = []
    try:
        wait_ready(base)
        token = _make_provider(dsn, base)
        issue_event, issue_pkg = _event(base, token, 1_000_000)
        burst_event, burst_pkg = _event(base, token, 1_000_000)
        event_ids = [issue_event, burst_event]

        # 1. the issuing rate of one worker, on orders already in the stream
        issue_bought, _ = asyncio.run(buy(base, issue_event, issue_pkg, args.issue,
                                                    min(args.buyers, 50)))
        issue_orders = asyncio.run(paid_orders(dsn, issue_event))
        _uvloop()  # as `kwika worker` runs
        issued = asyncio.run(issue_in_process(env, dsn, issue_event, inbox, issue_orders))
        asyncio.set_event_loop_policy(None)
        print(f"issued {issued['orders']} orders in {issued['seconds']:.1f} s", flush=True)

        # 2. purchase-to-inbox latency, `kwika worker` running, a burst bought over HTTP
        worker = subprocess.Popen([kwika, "worker"], env=env)
        asyncio.run(buy(base, issue_event, issue_pkg, 2, 2))  # its pool starts
        warm_orders = asyncio.run(paid_orders(dsn, issue_event))

        async def warmed() -> bool:
            return inbox.arrived(warm_orders) == len(warm_orders)

        assert asyncio.run(wait_for(warmed, 120)), "the worker sent no email"
        burst_load = load()
        t0 = time.time()
        bought, buy_s = asyncio.run(buy(base, burst_event, burst_pkg, args.burst, args.buyers))
        print(f"bought {bought.done} in {buy_s:.1f} s", flush=True)
        paid = asyncio.run(paid_orders(dsn, burst_event))

        async def all_in() -> bool:
            return inbox.arrived(paid) >= len(paid)

        drained = asyncio.run(wait_for(all_in, 900, 0.2))
        last = max((inbox.tickets[o][0] for o in paid if inbox.tickets.get(o)), default=t0)
        end_load = load()
        sold_at = asyncio.run(orders_of(dsn, burst_event))
        latencies = [inbox.tickets[o][0] - sold_at[o] for o in paid
                     if inbox.tickets.get(o) and o in sold_at]
        first_sale = min(sold_at.values(), default=t0)
        last_sale = max(sold_at.values(), default=t0)
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)
        server.send_signal(signal.SIGINT)
        server.wait(30)
        audit = subprocess.run([kwika, "audit", *map(str, event_ids)], env=env, capture_output=True,
                               check=False, text=True)
        problems = asyncio.run(books(dsn, event_ids, redis_server.url)) if event_ids else []
        smtp.stop()
        redis_server.stop()
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        shutil.rmtree(data_dir, ignore_errors=True)
    runtime = time.monotonic() - wall0

    all_orders = issue_orders | warm_orders | paid
    twice = sum(1 for o in all_orders if len(inbox.tickets.get(o, ())) != 1)
    notices_wrong = sum(1 for o in all_orders if inbox.notices.get(o) != 1)
    email_line = problems.pop()
    n = issued["orders"]
    st, calls = issued["stages"], issued["calls"]
    rows = []
    for stage in ("write (Postgres transaction)", "gate register + delivery queued",
                  "load order (mail)", "sign (order document)", "PDF render (pool)",
                  "compose message", "SMTP send"):
        c = calls.get(stage, 0)
        if not c:
            continue
        each = st[stage] / c
        per_order = st[stage] / n
        rows.append(f"| {stage} | {c:,} | {each * 1000:.1f} ms | {per_order * 1000:.1f} ms | "
                    f"{1 / per_order:,.0f} | {100 * st[stage] / issued['seconds']:.0f}% |")
    orders_line = ("every succeeded payment is one order with one ticket, tickets_sold agrees, no dead "
                   "letters"
                   if not problems else "; ".join(problems))
    latency_ok = drained and len(latencies) == len(paid)
    lines = [
        "# Fulfillment benchmark",
        "",
        (f"Run {started:%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores, a machine shared with other "
         f"work: load average {start_load} (1, 5, 15 min) at the start, {end_load} at the end; "
         f"{runtime:.0f} s in all. `kwika serve --workers 2` with the sandbox gateway, a private "
         "redis-server, PostgreSQL, an aiosmtpd SMTP server in the benchmark, and the buyers "
         "(asyncio, one fresh guest and one ticket per purchase), all on these cores."),
        (f"Command: `.venv/bin/python -m loadtests.bench_fulfillment --burst {args.burst} "
         f"--issue {args.issue} --buyers {args.buyers}`"),
        "",
        "## Headline",
        "",
        "| figure | value | load average before |",
        "|---|---|---|",
        (f"| tickets issued per second, one worker (written, registered, signed, PDF, emailed) | "
         f"**{n / issued['seconds']:.1f}** ({n} orders of 1 ticket in {issued['seconds']:.1f} s) | "
         f"{issued['load'][0]} |"),
        (f"| orders written to Postgres per second, same worker (all {n} written after) | "
         f"{n / issued['written_after']:,.0f} ({issued['written_after']:.2f} s) | "
         f"{issued['load'][0]} |"),
        (f"| purchase-to-inbox p50, burst of {len(paid):,} orders | **{pct(latencies, 0.5):.1f} s** "
         f"| {burst_load} |"),
        f"| purchase-to-inbox p99 | **{pct(latencies, 0.99):.1f} s** | {burst_load} |",
        (f"| purchase-to-inbox min / max | {min(latencies, default=float('nan')):.2f} s / "
         f"{max(latencies, default=float('nan')):.1f} s | {burst_load} |"),
        (f"| the burst: sales confirmed over | {last_sale - first_sale:.1f} s ({len(paid) / max(0.001, last_sale - first_sale):.0f} "
         f"purchases/s, {bought.done:,} seen paid by the buyers in {buy_s:.1f} s) | {burst_load} |"),
        (f"| the burst: last ticket email after the first sale | {last - first_sale:.1f} s "
         f"({len(paid) / max(0.001, last - first_sale):.1f} orders/s through the worker) | "
         f"{burst_load} |"),
        "",
        (f"## Where one worker's time goes ({n} orders waiting in the stream, "
         f"{issued['render_workers']} render processes)"),
        "",
        ("| stage | calls | mean a call (wall) | a order (wall) | orders/s this stage alone | "
         "share of the run |"),
        "|---|---|---|---|---|---|",
        *rows,
        "",
        (f"CPU: the worker's process {issued['cpu']:.1f} s ({issued['cpu'] / n * 1000:.0f} ms an "
         f"order), its render processes {issued['children_cpu']:.1f} s "
         f"({issued['children_cpu'] / n * 1000:.0f} ms an order), for {n} orders in "
         f"{issued['seconds']:.1f} s of wall time."),
        "",
        "What each figure measures:",
        "",
        ("- *Tickets issued per second*: the worker's two loops (`run_fulfillment`, and the mail "
         "worker made by `mail_worker(settings, ...)` with the real settings), run in the benchmark's "
         f"process on {n} confirmed sales already waiting in the event's orders stream, from their "
         "start to the arrival of the last ticket email at the SMTP server. Every order is written "
         "to Postgres (order, ticket, history, counters), registered for the gate, its delivery "
         "queued; the mail loop loads it, signs its payload, renders its PDF in the process pool, "
         "composes and sends the buyer's email and the organiser's new-sale notice, each claimed "
         "and marked in the email log. The render pool was started before the clock."),
        ("- *Stages*: wall time inside each wrapped function (the functions the worker calls, "
         "timed around the call); *a order* divides the total by the orders, and *orders/s this "
         "stage alone* is its inverse. SMTP send is two messages an order (tickets and notice), "
         "each a new connection to the local aiosmtpd server. The stages do not add up to the run: "
         "the mail loop's own email-log claims and marks, stream reads and acknowledgements are "
         "not wrapped."),
        ("- *Purchase-to-inbox*: `kwika worker` as a subprocess (one process, real settings), "
         f"already running and warm; {args.buyers} concurrent buyers make {args.burst:,} purchases "
         "over HTTP (hold, checkout, sandbox payment, hosted card page; the sandbox's signed "
         "webhook settles each). From each order's `sold_at` (Redis's clock, taken by the confirm "
         "script the webhook's settle runs: the moment the payment is confirmed) to the ticket "
         "email's arrival at the SMTP server (the server's clock, the same machine), matched by "
         "the order number in the PDF's file name."),
        "",
        "## Books",
        "",
        (f"- Orders: {orders_line} ({len(all_orders):,} orders over two events)."),
        (f"- At the SMTP server: {sum(len(v) for v in inbox.tickets.values()):,} ticket emails "
         f"for {len(all_orders):,} orders, {twice} orders without exactly one; "
         f"{sum(inbox.notices.values()):,} new-sale notices, {notices_wrong} orders without "
         f"exactly one; {inbox.other} other messages."),
        f"- {email_line}.",
        (f"- `kwika audit` of both events: exit {audit.returncode} "
         f"({'; '.join(x.strip() for x in audit.stdout.splitlines() if x.strip())[:300]})."),
    ]
    if not latency_ok:
        lines.append(f"- Only {len(latencies)} of {len(paid)} ticket emails of the burst arrived.")
    if bought.errors or issue_bought.errors:
        lines.append("- Buyer errors: " + "; ".join((issue_bought.errors + bought.errors)[:3]))
    lines += ["", *NOTES]
    report = "\n".join(lines) + "\n"
    REPORTS.mkdir(exist_ok=True)
    (REPORTS / "fulfillment.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
