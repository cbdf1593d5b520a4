"""Holds per second through HTTP: `kwika serve --workers 2` against a private redis-server,
driven by wrk (a C load generator) at 1,000 connections.

    .venv/bin/python -m loadtests.bench_http [--seconds 10] [--connections 1000] [--database-url URL]

Two runs: a long one against a large package (capacity figure), and a rush against 5,000
tickets that must end with exactly 5,000 holds. Writes loadtests/reports/http_holds.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from loadtests.common import REPORTS, PrivateRedis, free_port, wait_ready

HERE = Path(__file__).parent


def _call(base: str, method: str, path: str, body: dict | None = None, token: str | None = None) -> dict:
    req = urllib.request.Request(base + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(req, timeout=30) as resp:
        raw = resp.read()
        return json.loads(raw) if raw else {}


async def _verify(dsn: str, provider_id: int) -> None:
    conn = await asyncpg.connect(dsn)
    await conn.execute("UPDATE service_providers SET verification_status = 'verified' WHERE id = $1",
                       provider_id)
    await conn.close()


def _make_provider(dsn: str, base: str) -> str:
    email = f"bench-{uuid.uuid4().hex[:8]}@kwika.test"
    user = _call(base, "POST", "/api/auth/register", {"email": email, "name": "Bench", "password":
                 "bench-password", "account_type": "provider", "business_name": "Bench"})
    asyncio.run(_verify(dsn, user["provider_id"]))
    login = urllib.request.Request(base + "/api/auth/login", method="POST", data=json.dumps(
        {"email": email, "password": "bench-password"}).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(login) as resp:
        cookie = resp.headers["Set-Cookie"].split(";")[0]
        csrf = json.loads(resp.read())["csrf_token"]
    req = urllib.request.Request(base + "/api/auth/tokens", method="POST",
                                 data=b'{"name": "bench", "scope": "write"}', headers={
                                     "Content-Type": "application/json", "Cookie": cookie,
                                     "X-CSRF-Token": csrf})
    with urllib.request.urlopen(req) as resp:
        return json.loads(resp.read())["token"]


def _event(base: str, token: str, capacity: int) -> tuple[int, int]:
    starts = datetime.now(UTC) + timedelta(days=30)
    ev = _call(base, "POST", "/api/provider/events", {
        "title": f"Bench {uuid.uuid4().hex[:6]}", "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=3)).isoformat()}, token)
    pkg = _call(base, "POST", f"/api/provider/events/{ev['id']}/packages", {
        "name": "GA", "price": 1000, "capacity": capacity, "max_per_order": 10}, token)
    _call(base, "POST", f"/api/provider/events/{ev['id']}/publish", None, token)
    return ev["id"], pkg["id"]


def _wrk(base: str, event_id: int, package_id: int, seconds: float, connections: int,
         rate: int = 0) -> dict:
    """Run wrk; with `rate`, each connection is paced so that about `rate` requests/s are offered."""
    delay = str(round(connections * 1000 / rate)) if rate else "0"
    out = subprocess.run(
        ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "10s", "--latency",
         "-s", str(HERE / "wrk_hold.lua"), base],
        capture_output=True, text=True, check=True,
        env={**os.environ, "KWIKA_EVENT": str(event_id), "KWIKA_PACKAGE": str(package_id),
             "KWIKA_DELAY_MS": delay})
    line = [x for x in out.stdout.splitlines() if x.startswith("KWIKA ")][-1]
    return json.loads(line[6:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=int, default=3500, help="offered holds/s of the paced run")
    parser.add_argument("--database-url", default=os.environ.get(
        "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    redis_server = PrivateRedis()
    db = f"kwika_bench_{uuid.uuid4().hex[:6]}"
    admin_dsn = args.database_url

    async def create_db() -> None:
        conn = await asyncpg.connect(admin_dsn)
        await conn.execute(f'CREATE DATABASE "{db}"')
        await conn.close()

    async def drop_db() -> None:
        conn = await asyncpg.connect(admin_dsn)
        await conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await conn.close()

    asyncio.run(create_db())
    dsn = admin_dsn.rsplit("/", 1)[0] + "/" + db
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_server.url, "DATABASE_URL": dsn, "KWIKA_PORT": str(port),
           "KWIKA_WORKERS": str(args.workers), "KWIKA_LOG_LEVEL": "WARNING",
           "KWIKA_SECRET_KEY": "bench-secret-key-0123456789", "KWIKA_REDIS_MAX_CONNECTIONS": "200",
           # wrk is one address minting a guest per request: the per-address limits stay on (their
           # cost is in the figures) but high enough never to refuse
           "KWIKA_HOLDS_PER_IP_PER_MINUTE": "1000000", "KWIKA_GUESTS_PER_IP_PER_MINUTE": "1000000"}
    kwika = str(Path(sys.executable).parent / "kwika")
    subprocess.run([kwika, "migrate"], env=env, check=True)
    server = subprocess.Popen([kwika, "serve"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base)
        token = _make_provider(dsn, base)
        big_event, big_pkg = _event(base, token, 1_000_000)
        _wrk(base, big_event, big_pkg, 2, 100)  # warm up both workers
        levels = {c: _wrk(base, big_event, big_pkg, max(3, args.seconds // 2), c) for c in (1, 50, 500)}
        capacity = _wrk(base, big_event, big_pkg, args.seconds, args.connections)
        paced = _wrk(base, big_event, big_pkg, args.seconds, args.connections, rate=args.rate)
        live = _call(base, "GET", f"/api/provider/events/{big_event}", None, token)
        warm_and_run = 1_000_000 - live["packages"][0]["available"]
        rush_event, rush_pkg = _event(base, token, 5_000)
        rush = _wrk(base, rush_event, rush_pkg, 20, args.connections)  # long enough to sell out on a busy machine
        rush_live = _call(base, "GET", f"/api/provider/events/{rush_event}", None, token)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
        redis_server.stop()
        asyncio.run(drop_db())
    assert rush["created"] == 5_000 and rush_live["packages"][0]["available"] == 0, rush
    rate = capacity["created"] / capacity["seconds"]
    report = "\n".join([
        "# HTTP holds benchmark", "",
        (f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores: "
        f"`kwika serve --workers {args.workers}` and wrk (-t2 -c{args.connections}) on the same machine."),
        "Command: `.venv/bin/python -m loadtests.bench_http`", "",
        "| run | connections | seconds | holds created | holds/s | p50 ms | p99 ms | max ms | 409 | other | socket errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *[f"| closed loop | {c} | {r['seconds']:.1f} | {r['created']:,} | {r['created'] / r['seconds']:,.0f} | "
          f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} | {r['refused']} | {r['other']} | "
          f"{r['socket_errors']} |" for c, r in levels.items()],
        (f"| capacity (1M tickets) | {args.connections} | {capacity['seconds']:.1f} | {capacity['created']:,} | "
        f"{rate:,.0f} | {capacity['p50_ms']:.1f} | {capacity['p99_ms']:.1f} | {capacity['max_ms']:.1f} | "
        f"{capacity['refused']} | {capacity['other']} | {capacity['socket_errors']} |"),
        (f"| paced at ~{args.rate:,}/s offered | {args.connections} | {paced['seconds']:.1f} | {paced['created']:,} | "
        f"{paced['created'] / paced['seconds']:,.0f} | {paced['p50_ms']:.1f} | {paced['p99_ms']:.1f} | "
        f"{paced['max_ms']:.1f} | {paced['refused']} | {paced['other']} | {paced['socket_errors']} |"),
        (f"| rush (5,000 tickets) | {args.connections} | {rush['seconds']:.1f} | {rush['created']:,} | "
        f"- (sells out, then 409s) | {rush['p50_ms']:.1f} | {rush['p99_ms']:.1f} | "
        f"{rush['max_ms']:.1f} | {rush['refused']} | {rush['other']} | {rush['socket_errors']} |"),
        "",
        ("The capacity row sends back to back on every connection (closed loop: latency there is "
        "queueing, 1,000 requests always in flight); the paced row offers a fixed rate across the "
        "same 1,000 connections and shows the latency a buyer sees at that load."),
        "",
        (f"Books: the capacity event shows {warm_and_run:,} tickets held after warm-up and run; the rush "
        f"event ended with exactly {rush['created']:,} holds and 0 available: oversold 0."),
    ]) + "\n"
    REPORTS.mkdir(exist_ok=True)
    (REPORTS / "http_holds.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
