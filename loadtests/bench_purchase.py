"""Purchases per second end to end: hold, checkout, payment through the sandbox gateway (its API,
its hosted page, its signed webhook back), confirmed sale. `kwika serve --workers 2` and one
`kwika worker` against a private redis-server and a database of its own; buyers are asyncio
clients on the same machine.

    .venv/bin/python -m loadtests.bench_purchase [--seconds 20] [--buyers 200,1000]

For each number of concurrent buyers: the hold-only rate (the same buyers only holding), then
purchases: each buyer buys one ticket as a fresh guest, again and again, until time is up. The
share of time each step takes is measured on the client. Afterwards the books are checked: every
purchase the buyers saw paid is one succeeded payment and one sale, nothing oversold.
Writes loadtests/reports/purchases.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg

from loadtests.bench_http import _call, _event, _make_provider
from loadtests.common import REPORTS, PrivateRedis, free_port, wait_ready

STEPS = ("hold", "checkout", "pay", "hosted page", "card", "paid")
BILLING = {"name": "Bench Buyer", "email": "bench@example.test", "phone": "+265991234567"}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Stats:
    def __init__(self) -> None:
        self.steps: dict[str, list[float]] = defaultdict(list)
        self.done = 0
        self.refused = 0
        self.errors: list[str] = []

    def pct(self, step: str, q: float) -> float:
        data = sorted(self.steps[step])
        return data[min(len(data) - 1, int(q * len(data)))] if data else float("nan")


async def _timed(stats: Stats, step: str, coro):
    t0 = time.perf_counter()
    result = await coro
    stats.steps[step].append((time.perf_counter() - t0) * 1000)
    return result


async def _post(session: aiohttp.ClientSession, url: str, **kw) -> tuple[int, dict]:
    async with session.post(url, **kw) as resp:
        return resp.status, await resp.json()


async def _text(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as resp:
        return await resp.text()


async def _form(session: aiohttp.ClientSession, url: str, data: dict) -> int:
    async with session.post(url, data=data, allow_redirects=False) as resp:
        return resp.status


async def purchase(session: aiohttp.ClientSession, base: str, event_id: int, package_id: int,
                   stats: Stats) -> bool:
    """One guest buys one ticket; False when the hold was refused (sold out)."""
    status, hold = await _timed(stats, "hold", _post(
        session, f"{base}/api/events/{event_id}/holds",
        json={"items": [{"package_id": package_id, "quantity": 1}]}))
    if status != 201:
        if status != 409:
            stats.errors.append(f"hold {status} {hold}")
        stats.refused += 1
        return False
    status, order = await _timed(stats, "checkout", _post(
        session, f"{base}/api/holds/{hold['id']}/checkout",
        json={"billing": BILLING, "accept_terms": True, "use_buyer_details": True}))
    number = order["order_number"]
    status, order = await _timed(stats, "pay", _post(
        session, f"{base}/api/orders/{number}/payments", json={"method": "card", "gateway": "sandbox"}))
    if status != 201:
        stats.errors.append(f"pay {status} {order}")
        return False
    page_url = order["next_action"]["url"]
    page = await _timed(stats, "hosted page", _text(session, page_url))
    token = _CSRF.search(page).group(1)
    await _timed(stats, "card", _form(session, f"{page_url}/card", {
        "csrf_token": token, "card_number": "4242 4242 4242 4242", "expiry": "12/34", "cvc": "123"}))
    t0 = time.perf_counter()
    while True:  # as the payment status page does
        async with session.get(f"{base}/api/orders/{number}") as r:
            if (await r.json())["status"] == "paid":
                break
        await asyncio.sleep(0.2)
    stats.steps["paid"].append((time.perf_counter() - t0) * 1000)
    stats.done += 1
    return True


async def hold_only(session: aiohttp.ClientSession, base: str, event_id: int, package_id: int,
                    stats: Stats) -> bool:
    status, _ = await _timed(stats, "hold", _post(
        session, f"{base}/api/events/{event_id}/holds",
        json={"items": [{"package_id": package_id, "quantity": 1}]}))
    stats.done += status == 201
    return status == 201


async def drive(base: str, event_id: int, package_id: int, buyers: int, seconds: float,
                step) -> tuple[Stats, float]:
    stats = Stats()
    stop_at = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=0)

    async def buyer() -> None:
        while time.perf_counter() < stop_at:
            async with aiohttp.ClientSession(connector=connector, connector_owner=False,
                                             cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
                try:
                    if not await step(session, base, event_id, package_id, stats):
                        await asyncio.sleep(0.05)
                except (TimeoutError, aiohttp.ClientError, KeyError, AttributeError) as exc:
                    stats.errors.append(f"{type(exc).__name__}: {exc}")

    t0 = time.perf_counter()
    await asyncio.gather(*[buyer() for _ in range(buyers)])
    elapsed = time.perf_counter() - t0
    await connector.close()
    return stats, elapsed


async def verify(dsn: str, event_ids: list[int], bought: int) -> str:
    conn = await asyncpg.connect(dsn)
    paid = await conn.fetchval("SELECT count(*) FROM payments WHERE state = 'succeeded' "
                               "AND event_id = ANY($1::bigint[])", event_ids)
    twice = await conn.fetchval("SELECT count(*) FROM (SELECT order_number FROM payments WHERE "
                                "state = 'succeeded' GROUP BY order_number HAVING count(*) > 1) x")
    await conn.close()
    assert paid >= bought and twice == 0, (paid, bought, twice)
    return f"{paid:,} succeeded payments for {bought:,} purchases seen paid, none paid twice"


async def _fulfilled(dsn: str, within: float = 300) -> None:
    """Wait until the worker has written an order for every succeeded payment (or time is up:
    the audit then says what is missing)."""
    conn = await asyncpg.connect(dsn)
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            paid = await conn.fetchval("SELECT count(*) FROM payments WHERE state = 'succeeded'")
            if await conn.fetchval("SELECT count(*) FROM orders") >= paid:
                return
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--buyers", default="200,1000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default=os.environ.get(
        "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    levels = [int(x) for x in args.buyers.split(",")]
    redis_server = PrivateRedis()
    db = f"kwika_bench_{uuid.uuid4().hex[:6]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(args.database_url)
        await conn.execute(sql)
        await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{db}"'))
    dsn = args.database_url.rsplit("/", 1)[0] + "/" + db
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_server.url, "DATABASE_URL": dsn, "KWIKA_PORT": str(port),
           "KWIKA_WORKERS": str(args.workers), "KWIKA_LOG_LEVEL": "WARNING",
           "KWIKA_SECRET_KEY": "bench-secret-key-0123456789", "KWIKA_REDIS_MAX_CONNECTIONS": "200",
           "KWIKA_SANDBOX": "true", "KWIKA_SANDBOX_SETTLE_MS": "200",
           "KWIKA_HOLDS_PER_IP_PER_MINUTE": "1000000", "KWIKA_GUESTS_PER_IP_PER_MINUTE": "1000000",
           "KWIKA_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    kwika = str(Path(sys.executable).parent / "kwika")
    subprocess.run([kwika, "migrate"], env=env, check=True)
    server = subprocess.Popen([kwika, "serve"], env=env)
    # the worker a deployment runs beside the storefront: sales to Postgres (no mail here)
    worker = subprocess.Popen([kwika, "worker"], env={**env, "KWIKA_MAIL": "false"})
    base = f"http://127.0.0.1:{port}"
    rows, checks, event_ids = [], [], []
    try:
        wait_ready(base)
        token = _make_provider(dsn, base)
        for buyers in levels:
            hold_event, hold_pkg = _event(base, token, 1_000_000)
            held, held_s = asyncio.run(drive(base, hold_event, hold_pkg, buyers, args.seconds / 2,
                                             hold_only))
            buy_event, buy_pkg = _event(base, token, 1_000_000)
            event_ids.append(buy_event)
            bought, bought_s = asyncio.run(drive(base, buy_event, buy_pkg, buyers, args.seconds,
                                                 purchase))
            rows.append((buyers, held, held_s, bought, bought_s))
            checks.append(asyncio.run(verify(dsn, [buy_event], bought.done)))
            _call(base, "GET", f"/api/provider/events/{buy_event}", None, token)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
        asyncio.run(_fulfilled(dsn))  # the audit expects every sale's order in Postgres
        worker.send_signal(signal.SIGINT)
        worker.wait(30)
        audit = subprocess.run([kwika, "audit", *map(str, event_ids)], env=env, capture_output=True,
                               check=False,
                               text=True)
        redis_server.stop()
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
    lines = ["# Purchases benchmark", "",
             (f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores: `kwika serve "
              f"--workers {args.workers}` and one `kwika worker` with the sandbox gateway, and the buyers (asyncio, one "
              "fresh guest per purchase) on the same machine."),
             "Command: `.venv/bin/python -m loadtests.bench_purchase`", "",
             "| buyers | hold-only holds/s | purchases/s | purchases | p50 s | p99 s | errors |",
             "|---|---|---|---|---|---|---|"]
    for buyers, held, held_s, bought, bought_s in rows:
        whole = [sum(parts) for parts in zip(*(bought.steps[s][:bought.done] for s in STEPS),
                                             strict=False)]
        whole.sort()
        p50 = whole[len(whole) // 2] / 1000 if whole else float("nan")
        p99 = whole[min(len(whole) - 1, int(len(whole) * 0.99))] / 1000 if whole else float("nan")
        lines.append(f"| {buyers:,} | {held.done / held_s:,.0f} | {bought.done / bought_s:,.1f} | "
                     f"{bought.done:,} | {p50:.2f} | {p99:.2f} | {len(bought.errors)} |")
    lines += ["", ("Share of a purchase's time by step (client side, mean; `paid` is from the card "
                   "form's answer to the order showing paid: the webhook's trip and processing, "
                   "seen by polling every 200 ms):"), "",
              "| buyers | " + " | ".join(STEPS) + " |", "|---|" + "---|" * len(STEPS)]
    for buyers, _, _, bought, _ in rows:
        means = {s: sum(bought.steps[s]) / max(1, len(bought.steps[s])) for s in STEPS}
        total = sum(means.values()) or 1
        lines.append(f"| {buyers:,} | " + " | ".join(
            f"{100 * means[s] / total:.0f}% ({means[s]:.0f} ms)" for s in STEPS) + " |")
    lines += ["", "Books: " + "; ".join(checks) + ".",
              f"`kwika audit` of the purchase events: exit {audit.returncode}."]
    if any(b.errors for _, _, _, b, _ in rows):
        lines += ["", "First errors: " + "; ".join(rows[-1][3].errors[:3])]
    report = "\n".join(lines) + "\n"
    REPORTS.mkdir(exist_ok=True)
    (REPORTS / "purchases.md").write_text(report)
    print(report)
    print(audit.stdout[-2000:])


if __name__ == "__main__":
    main()
