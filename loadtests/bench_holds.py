"""Holds per second through the engine interface, beside the raw Redis ceiling and a PostgreSQL
row-lock baseline, all in one run on one machine.

    .venv/bin/python -m loadtests.bench_holds [--seconds 5] [--database-url URL]

Starts a private redis-server (the machine's binary). Writes loadtests/reports/holds.md.
Every run ends with the books checked: successful holds == held stock, nothing oversold.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import time
from datetime import UTC, datetime

import asyncpg
import redis.asyncio as redis

from engine.audit import audit
from engine.inventory import HoldLimits, HoldRefused, Inventory
from engine.keys import Keys
from loadtests import pg_baseline
from loadtests.common import HEADER, REPORTS, PrivateRedis, Result
from tests.inventory_helpers import event, package

CONCURRENCY = (1, 50, 500)
# the rate limits a storefront applies, generous enough never to refuse here: their cost is in
# every figure (one client address, as from a single load generator)
LIMITS = HoldLimits(client="127.0.0.1", buyer=(10, 10), ip=(1_000_000, 1_000_000))
LIMITS_ARG = "10 10 1000000 1000000 0 1"  # as the hold script takes them (engine/inventory._rates)


async def drive(name: str, concurrency: int, seconds: float, call) -> Result:
    """`concurrency` callers each calling `call(i)` back to back for `seconds`."""
    latencies: list[float] = []
    errors = 0
    ops = 0
    stop_at = time.perf_counter() + seconds

    async def caller(worker: int) -> None:
        nonlocal errors, ops
        n = 0
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            try:
                await call(f"{worker}-{n}")
                ops += 1
            except HoldRefused:
                errors += 1
            latencies.append((time.perf_counter() - t0) * 1000)
            n += 1

    started = time.perf_counter()
    await asyncio.gather(*[caller(w) for w in range(concurrency)])
    return Result(name, concurrency, ops, time.perf_counter() - started, latencies, errors)


async def engine_runs(url: str, seconds: float) -> list[Result]:
    results = []
    for c in CONCURRENCY:
        client = redis.Redis.from_url(url, max_connections=64)
        inv = Inventory(client, Keys(f"bench{c}"))
        ev = event()
        pkg = package(ev.id, capacity=50_000_000, max_per_order=10)
        await inv.load(ev, [pkg], None)
        r = await drive("engine (Lua hold, auto-pipelined)", c, seconds,
                        lambda buyer, inv=inv, ev=ev, pkg=pkg: inv.hold(ev.id, f"u:{buyer}", {pkg.id: 1},
                                                                        limits=LIMITS))
        stock = (await inv.availability(ev.id)).packages[pkg.id]
        assert stock.held == r.ops and stock.available + stock.held == stock.capacity, stock
        assert await audit(inv, ev.id) == []
        r.note = f"books: held {stock.held} == successful holds, audit clean; oversold 0"
        results.append(r)
        await inv.close()
        await client.flushdb()
        await client.aclose()
    return results


async def oversell_run(url: str) -> Result:
    """The rush itself: 20,000 buyers at once for 5,000 tickets."""
    client = redis.Redis.from_url(url, max_connections=64)
    inv = Inventory(client, Keys("benchrush"))
    ev = event()
    pkg = package(ev.id, capacity=5_000)
    await inv.load(ev, [pkg], None)
    t0 = time.perf_counter()
    outcomes = await asyncio.gather(*[inv.hold(ev.id, f"u:{i}", {pkg.id: 1}, limits=LIMITS)
                                      for i in range(20_000)], return_exceptions=True)
    elapsed = time.perf_counter() - t0
    won = sum(not isinstance(o, Exception) for o in outcomes)
    stock = (await inv.availability(ev.id)).packages[pkg.id]
    assert won == 5_000 == stock.held and stock.available == 0, (won, stock)
    assert await audit(inv, ev.id) == []
    await inv.close()
    await client.flushdb()
    await client.aclose()
    return Result("rush: 20,000 buyers, 5,000 tickets", 20_000, 20_000, elapsed, [], 20_000 - won,
                  f"sold/held exactly {won}; refused {20_000 - won} as sold_out")


async def pg_runs(dsn: str, seconds: float) -> list[Result]:
    results = []
    for variant, fn in (("update", pg_baseline.hold_update), ("for_update", pg_baseline.hold_for_update)):
        for c in CONCURRENCY:
            pool = await asyncpg.create_pool(dsn, min_size=min(c, 50), max_size=50)
            await pg_baseline.setup(pool, 50_000_000)
            r = await drive(f"PostgreSQL row lock ({variant})", c, seconds,
                            lambda buyer, fn=fn, pool=pool: fn(pool, buyer))
            cap, remaining, held = await pg_baseline.verify(pool)
            assert held == r.ops and remaining + held == cap
            r.note = "pool 50"
            results.append(r)
            await pool.execute("DROP TABLE bench_holds; DROP TABLE bench_stock")
            await pool.close()
    return results


def redis_ceiling(port: int, total: int = 200_000) -> list[Result]:
    """redis-benchmark running EVALSHA of the same hold script (one buyer per call)."""
    import redis as sync_redis

    from engine.inventory import EVENT_KEYS
    from engine.lua import load_script

    script = load_script("hold")
    client = sync_redis.Redis(port=port)
    client.script_load(script.source)
    ev = event()
    pkg = package(ev.id, capacity=100_000_000)

    async def load() -> None:
        c = redis.Redis(port=port)
        await Inventory(c, Keys("ceiling")).load(ev, [pkg], None)
        await c.aclose()

    asyncio.run(load())
    keys = [Keys("ceiling").event(ev.id, k) for k in EVENT_KEYS]
    results = []
    for pipeline in (1, 16):
        out = subprocess.run(
            ["redis-benchmark", "-p", str(port), "-c", "50", "-n", str(total), "-P", str(pipeline),
             "-r", "1000000000", "--csv", "EVALSHA", script.sha, str(len(keys)), *keys,
             f"H{ev.id}-__rand_int__", "u:__rand_int__", "900000",
             f'{{"ga":[[{pkg.id},1]],"seats":[]}}', "20", LIMITS_ARG, "127.0.0.1", "0"],
            capture_output=True, text=True, check=True)
        line = [x for x in out.stdout.splitlines() if x.startswith('"EVALSHA')][-1]
        # "name",rps,avg,min,p50,p95,p99,max (the name holds commas of its own)
        fields = [float(f.strip('"')) for f in line.rsplit(",", 7)[1:]]
        rps, p50, p99 = fields[0], fields[3], fields[5]
        results.append(Result(f"redis-benchmark EVALSHA hold.lua, -P {pipeline}", 50,
                              int(rps), 1.0, [p50] * 50 + [p99], note="raw Redis ceiling"))
    client.flushdb()
    return results


def write_report(rows: list[Result], seconds: float) -> str:
    by = {(r.name, r.concurrency): r for r in rows}
    engine500 = by[("engine (Lua hold, auto-pipelined)", 500)].rate
    pg500 = max(by[(n, 500)].rate for n in ("PostgreSQL row lock (update)", "PostgreSQL row lock (for_update)"))
    ceiling = by.get(("redis-benchmark EVALSHA hold.lua, -P 1", 50))
    lines = [
        "# Holds benchmark", "",
        (f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores, "
        f"{seconds:.0f} s per row, one Python process (uvloop) for the engine and PostgreSQL rows."),
        "Command: `.venv/bin/python -m loadtests.bench_holds`", "", HEADER,
        *[r.row() for r in rows], "",
        "Ratios from this run:",
        f"- engine at 500 callers / PostgreSQL row lock at 500 callers: **{engine500 / pg500:.1f}x**",
    ]
    if ceiling:
        lines.append(f"- engine at 500 callers / un-pipelined redis-benchmark ceiling: "
                     f"**{engine500 / ceiling.rate:.2f}**")
    lines += ["", "Oversold tickets in every row: 0 (each row's books are checked after the run)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--database-url", default=os.environ.get(
        "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    server = PrivateRedis()
    try:
        rows = asyncio.run(engine_runs(server.url, args.seconds))
        rows.append(asyncio.run(oversell_run(server.url)))
        rows += redis_ceiling(server.port)
        rows += asyncio.run(pg_runs(args.database_url, args.seconds))
    finally:
        server.stop()
    report = write_report(rows, args.seconds)
    REPORTS.mkdir(exist_ok=True)
    (REPORTS / "holds.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
