"""Scans per second at the gate and their latency: `kwika serve` against a private redis-server,
driven over HTTP by wrk at 200 connections (flat out, then paced to about 1,000 scans/s), and
beside it, in the same run, the same check-in in one process two ways: the engine (signature,
then the Lua script, on Redis) and the plain PostgreSQL way most systems use (signature, then
a lookup-and-update of the ticket row).

    .venv/bin/python -m loadtests.bench_scan [--seconds 10] [--workers 2] [--tickets 120000]

Every scan is of a ticket not yet in (the admit path, the one that writes), until a run has used
its share; then it wraps round (already used: the read path). A `kwika worker` runs beside the
server and writes the check-ins to Postgres; at the end the books must agree: admitted answers
== used tickets in the register == check-ins in Postgres. Writes loadtests/reports/scan.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import redis.asyncio as redis

from engine.checkin.desk import GateDesk
from engine.keys import Keys
from engine.tickets import Keyring, TicketClaims, new_ticket_number, sign_ticket, verify_ticket
from engine.tickets.gate import GateTicket, register
from loadtests.bench_http import _call, _event, _make_provider
from loadtests.common import PrivateRedis, TempDatabase, free_port, wait_ready, write_report

HERE = Path(__file__).parent
THREADS = 2
WARM_UP = 2_000  # codes kept for each in-process warm-up


def _wrk(base: str, bodies: Path, token: str, seconds: float, connections: int,
         rate: int = 0) -> dict:
    delay = str(round(connections * 1000 / rate)) if rate else "0"
    out = subprocess.run(
        ["wrk", f"-t{THREADS}", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "10s",
         "-s", str(HERE / "wrk_scan.lua"), base], capture_output=True, text=True, check=True,
        env={**os.environ, "KWIKA_BODIES": str(bodies), "KWIKA_TOKEN": token,
             "KWIKA_DELAY_MS": delay, "KWIKA_THREADS": str(THREADS)})
    line = [x for x in out.stdout.splitlines() if x.startswith("KWIKA ")][-1]
    return json.loads(line[6:])


async def _tickets(dsn: str, redis_url: str, prefix: str, event_id: int, package_id: int,
                   count: int) -> list[str]:
    """`count` tickets of one order, in Postgres and in the gate register."""
    numbers = [new_ticket_number(event_id) for _ in range(count)]
    conn = await asyncpg.connect(dsn)
    order_id = await conn.fetchval(
        "INSERT INTO orders (order_number, event_id, hold_id, buyer, email, buyer_name, subtotal, "
        "fees, total, currency, sold_at) VALUES ($1, $2, 'H-bench', 'u:0', 'b@kwika.test', "
        "'Bench', 0, 0, 0, 'MWK', now()) RETURNING id", f"ORD-{uuid.uuid4().hex[:10]}", event_id)
    await conn.copy_records_to_table(
        "tickets", columns=["ticket_number", "order_id", "event_id", "package_id", "price",
                            "attendee_name", "attendee_email"],
        records=[(n, order_id, event_id, package_id, 1000, f"Guest {i}", "g@kwika.test")
                 for i, n in enumerate(numbers)])
    await conn.close()
    client = redis.Redis.from_url(redis_url)
    await register(client, Keys(prefix).event(event_id, "tickets"),
                   ((n, GateTicket(s="valid", g=1, p=package_id, seat=None, n=f"Guest {i}"))
                    for i, n in enumerate(numbers)))
    await client.aclose()
    return numbers


def _codes(keyring: Keyring, numbers: list[str]) -> list[str]:
    return [sign_ticket(keyring, TicketClaims(ticket_number=n, event_id=int(n.split("-")[1])))
            for n in numbers]


def _pct(data: list[float], q: float) -> float:
    data = sorted(data)
    return data[min(len(data) - 1, int(q * len(data)))] if data else float("nan")


async def _drive(op, codes: list[str], seconds: float, callers: int, rate: int) -> dict:
    """`callers` tasks calling `op(code)` for `seconds`, flat out or paced to about `rate`/s."""
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    index = 0
    deadline = time.perf_counter() + seconds
    pause = callers / rate if rate else 0

    async def caller() -> None:
        nonlocal index
        while time.perf_counter() < deadline:
            code = codes[index % len(codes)]
            index += 1
            started = time.perf_counter()
            result = await op(code)
            latencies.append((time.perf_counter() - started) * 1000)
            outcomes[result] = outcomes.get(result, 0) + 1
            if pause:
                await asyncio.sleep(random.uniform(0, 2 * pause))

    began = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    took = time.perf_counter() - began
    return {"requests": len(latencies), "seconds": took, "p50_ms": _pct(latencies, 0.5),
            "p99_ms": _pct(latencies, 0.99), "admitted": outcomes.get("admitted", 0),
            "outcomes": outcomes}


async def _in_process(dsn: str, redis_url: str, prefix: str, keyring: Keyring, event_id: int,
                      engine_codes: list[list[str]], pg_codes: list[list[str]], seconds: float,
                      rate: int) -> list[tuple[str, dict]]:
    client = redis.Redis.from_url(redis_url, max_connections=200)
    desk = GateDesk(client, Keys(prefix))
    pool = await asyncpg.create_pool(dsn, min_size=20, max_size=20)
    keys = keyring.public_keys

    async def engine(code: str) -> str:
        claims = verify_ticket(keys, code)
        return (await desk.check_in(event_id, claims.ticket_number, claims.generation, "Bench",
                                    "u:0")).r

    async def postgres(code: str) -> str:
        claims = verify_ticket(keys, code)
        async with pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE tickets SET status = 'used', checked_in_at = now(), checked_in_by = $3 "
                "WHERE ticket_number = $1 AND event_id = $2 AND status = 'valid' "
                "AND generation = $4 RETURNING attendee_name, package_id, seat_id",
                claims.ticket_number, event_id, "pg-baseline", claims.generation)
            if row is not None:
                return "admitted"
            why = await conn.fetchrow("SELECT status, checked_in_at FROM tickets "
                                      "WHERE ticket_number = $1", claims.ticket_number)
            return why["status"] if why else "unknown"

    rows = []
    try:
        for label, op, codes in (("engine (Redis)", engine, engine_codes),
                                 ("PostgreSQL row update", postgres, pg_codes)):
            # a second of warm-up first (connections, script loading), on codes the measured
            # runs do not reach first; its check-ins are counted with the rest
            rows.append(("warm-up", await _drive(op, codes[1][-WARM_UP:], 1.0, 200, rate)))
            rows.append((f"{label}, flat out", await _drive(op, codes[0], seconds, 200, 0)))
            rows.append((f"{label}, paced", await _drive(op, codes[1][:-WARM_UP], seconds, 200,
                                                         rate)))
    finally:
        await pool.close()
        await desk.close()
        await client.aclose()
    return rows


async def _settled(dsn: str, redis_url: str, prefix: str, event_id: int,
                   within: float = 120) -> None:
    """Until the worker has written every check-in so far to Postgres: each run starts from a
    quiet machine rather than from the previous run's backlog."""
    client = redis.Redis.from_url(redis_url)
    register_key = Keys(prefix).event(event_id, "checkin:counts")
    conn = await asyncpg.connect(dsn)
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            counted = int(await client.hget(register_key, "in") or 0)
            if await conn.fetchval("SELECT count(*) FROM checkins WHERE event_id = $1",
                                   event_id) >= counted:
                return
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
        await client.aclose()


async def _books(dsn: str, redis_url: str, prefix: str, event_id: int, admitted: int,
                 within: float = 120) -> str:
    client = redis.Redis.from_url(redis_url)
    used = sum(b'"s":"used"' in v for v in
               (await client.hgetall(Keys(prefix).event(event_id, "tickets"))).values())
    counted = int(await client.hget(Keys(prefix).event(event_id, "checkin:counts"), "in") or 0)
    await client.aclose()
    conn = await asyncpg.connect(dsn)
    deadline = time.monotonic() + within
    while True:
        logged = await conn.fetchval("SELECT count(*) FROM checkins WHERE event_id = $1", event_id)
        if logged >= used or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    in_pg = await conn.fetchval("SELECT count(*) FROM tickets WHERE event_id = $1 "
                                "AND checked_in_at IS NOT NULL AND checked_in_by <> 'pg-baseline'",
                                event_id)
    await conn.close()
    # wrk cuts the connections still waiting when a run ends: scans the server made whose
    # answer never arrived are in the register but not among the answers counted
    ok = admitted <= used == counted == logged == in_pg
    return (f"{admitted:,} admitted answers received, {used:,} used tickets in the register "
            f"({used - admitted:,} admitted by scans whose answer wrk cut off at the end of a run), "
            f"count {counted:,}, {logged:,} check-ins logged and {in_pg:,} tickets checked in in "
            f"Postgres: {'all agree' if ok else 'MISMATCH'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--tickets", type=int, default=120_000)
    parser.add_argument("--database-url", default=os.environ.get(
        "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    redis_server = PrivateRedis()
    database = TempDatabase(args.database_url)
    dsn = database.dsn
    port, prefix, keyring = free_port(), "kw", Keyring.generate("BNCH")
    env = {**os.environ, "REDIS_URL": redis_server.url, "DATABASE_URL": dsn,
           "KWIKA_PORT": str(port), "KWIKA_WORKERS": str(args.workers),
           "KWIKA_LOG_LEVEL": "WARNING", "KWIKA_SECRET_KEY": "bench-secret-key-0123456789",
           "KWIKA_REDIS_MAX_CONNECTIONS": "200", "KWIKA_TICKET_SIGNING_KEYS": keyring.to_text(),
           "KWIKA_DB_POOL_MAX": "8",  # the scan path does not use Postgres
           "KWIKA_MAIL": "false"}
    kwika = str(Path(sys.executable).parent / "kwika")
    subprocess.run([kwika, "migrate"], env=env, check=True)
    folder = Path(tempfile.mkdtemp(prefix="kwika-scan-"))
    # their logs go to files: wrk cuts connections mid-request when a run ends, which the
    # server logs as errors
    server = subprocess.Popen([kwika, "serve"], env=env, stderr=(folder / "serve.log").open("w"))
    worker = subprocess.Popen([kwika, "worker"], env=env, stderr=(folder / "worker.log").open("w"))
    base = f"http://127.0.0.1:{port}"
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    try:
        wait_ready(base)
        token = _make_provider(dsn, base)
        event_id, package_id = _event(base, token, 10)
        _call(base, "GET", f"/api/events/{event_id}/gate/counts", None, token)
        share = args.tickets // 6
        numbers = asyncio.run(_tickets(dsn, redis_server.url, prefix, event_id, package_id,
                                       6 * share))
        sets = [numbers[i * share:(i + 1) * share] for i in range(6)]
        codes = [_codes(keyring, s) for s in sets]
        files = []
        for n in (0, 1):
            path = folder / f"bodies{n}.jsonl"
            path.write_text("".join(json.dumps({"event_id": event_id, "code": c, "gate": f"G{i % 8}"},
                                               separators=(",", ":")) + "\n"
                                    for i, c in enumerate(codes[n])))
            files.append(path)
        http = [("HTTP, flat out", _wrk(base, files[0], token, args.seconds, args.connections))]
        asyncio.run(_settled(dsn, redis_server.url, prefix, event_id))
        http.append(("HTTP, paced", _wrk(base, files[1], token, args.seconds * 2,
                                         args.connections, args.rate)))
        asyncio.run(_settled(dsn, redis_server.url, prefix, event_id))
        local = asyncio.run(_in_process(dsn, redis_server.url, prefix, keyring, event_id,
                                        codes[2:4], codes[4:6], args.seconds, args.rate))
        # the in-process engine runs check tickets in too: count them with the HTTP ones (the
        # PostgreSQL baseline's are its own, marked `pg-baseline`)
        admitted = sum(r["admitted"] for _, r in http) + sum(
            r["admitted"] for label, r in local[:3])  # the engine's warm-up and runs
        books = asyncio.run(_books(dsn, redis_server.url, prefix, event_id, admitted))
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
        worker.send_signal(signal.SIGINT)
        worker.wait(30)
        redis_server.stop()
        database.drop()
    load_after = os.getloadavg()
    lines = ["# Scan benchmark", "",
             (f"Run {started:%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores (load average "
             f"{load_before[0]:.2f} before, {load_after[0]:.2f} after; the machine is shared): "
             f"`kwika serve --workers {args.workers}` and one `kwika worker` (writing the "
             "check-ins to Postgres) against a private redis-server, wrk on the same machine with "
             f"{args.connections} connections, {len(sets[0]):,} distinct tickets per run."),
             "Command: `.venv/bin/python -m loadtests.bench_scan`", "",
             ("Server latency is the app's own time per request (its `Server-Timing` header: from "
             "the first middleware to the answer, auth included; not the HTTP parsing and "
             "writing); client latency is wrk's (queueing on the shared cores included). The "
             "in-process rows are one Python process with 200 concurrent callers: the engine "
             "(signature, then the check-in script, pipelined) and the plain PostgreSQL way "
             "(signature, then `UPDATE tickets ... WHERE ticket_number = $1 AND status = 'valid' "
             "RETURNING ...` in a transaction, pool of 20), each after a second of warm-up. Every "
              "run starts once the worker has written the check-ins before it to Postgres. "
              f"Paced runs offer about {args.rate:,} scans/s (each connection or caller waits "
              "a random 0-400 ms between scans); the HTTP paced run lasts twice as long."), "",
             ("| scenario | scans/s | admitted | server p50 ms | server p99 ms | client p50 ms | "
             "client p99 ms | errors |"), "|---|---|---|---|---|---|---|---|"]
    for label, r in http:
        lines.append(f"| {label} | {r['requests'] / r['seconds']:,.0f} | {r['admitted']:,} | "
                     f"{r['server_p50_ms']:.2f} | {r['server_p99_ms']:.2f} | {r['p50_ms']:.2f} | "
                     f"{r['p99_ms']:.2f} | {r['other'] + r['socket_errors']} |")
    for label, r in local:
        if label == "warm-up":
            continue
        lines.append(f"| {label} | {r['requests'] / r['seconds']:,.0f} | {r['admitted']:,} | - | "
                     f"- | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | 0 |")
    lines += ["", f"Books: {books}."]
    write_report("scan.md", lines)


if __name__ == "__main__":
    main()
