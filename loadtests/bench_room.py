"""Waiting-room benchmark: joins, position reads and admission ticks with 1,000,000 visitors
queued for one event, at the Redis level (engine.room.WaitingRoom against a private redis-server)
and through HTTP (`kwika serve --workers 2`; joins by an aiohttp client, position reads by wrk);
Redis memory per queued visitor. Writes loadtests/reports/room.md.

    .venv/bin/python -m loadtests.bench_room [--visitors 1000000] [--seconds 10]

Redis time per call is from INFO commandstats (`usec_per_call` of EVALSHA, which includes the
commands the script runs): what one Redis core spends, whatever the client's speed. Rates are
what one Python client process achieves on this machine, sharing its 2 cores with Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import redis.asyncio as redis

from engine import catalog_types as t
from engine.inventory import Inventory
from engine.keys import Keys
from engine.room import RoomSettings, WaitingRoom
from engine.room.tokens import solve
from loadtests.bench_http import _call, _event, _make_provider
from loadtests.common import REPORTS, PrivateRedis, TempDatabase, free_port, wait_ready

BATCH = 2000  # calls in flight at once from the client


def _event_of(event_id: int, capacity: int) -> tuple[t.Event, list[t.Package]]:
    now = datetime.now(UTC)
    ev = t.Event(id=event_id, provider_id=1, slug="b", title="B", description="", category="x",
                 venue="", address="", city="", latitude=None, longitude=None, starts_at=now,
                 ends_at=now, timezone="UTC", cover_image_url=None, status="published",
                 requires_seating=False, allow_guest_checkout=True, uses_waiting_room=True,
                 currency="MWK", max_tickets_per_buyer=10, service_fee=0, tickets_sold=0,
                 published_at=now, created_at=now, updated_at=now)
    pkg = t.Package(id=event_id * 10, event_id=event_id, name="GA", description="", price=1000,
                    capacity=capacity, min_per_order=1, max_per_order=10, per_buyer_limit=None,
                    opens_at=None, closes_at=None, sort_order=0, is_active=True)
    return ev, [pkg]


async def _stats(client: redis.Redis) -> float:
    info = await client.info("commandstats")
    return float(info.get("cmdstat_evalsha", {}).get("usec_per_call", 0.0))


async def _timed(client: redis.Redis, calls, n: int) -> tuple[float, float, list[float]]:
    """Run `n` calls (`calls(i)` makes the i-th coroutine) BATCH at a time: (calls/s, Redis
    usec per call, latencies in ms of a sequential sample)."""
    await client.config_resetstat()
    started = time.perf_counter()
    for first in range(0, n, BATCH):
        await asyncio.gather(*(calls(i) for i in range(first, min(n, first + BATCH))))
    rate = n / (time.perf_counter() - started)
    usec = await _stats(client)
    sample = []
    for i in range(300):
        t0 = time.perf_counter()
        await calls(random.randrange(n))
        sample.append((time.perf_counter() - t0) * 1000)
    return rate, usec, sorted(sample)


def _pct(data: list[float], q: float) -> float:
    return data[min(len(data) - 1, int(q * len(data)))]


def buyer(i: int) -> str:
    return f"g:{i:022d}"  # as long as a real guest id (22 characters)


async def fill(room: WaitingRoom, event_id: int, n: int, start: int = 0):
    expires = int(time.time() * 1000) + 120_000
    return await _timed(room.runner.client, lambda i: room.join(
        event_id, buyer(start + i), os.urandom(16).hex(), expires, "10.0.0.1", 0), n)


async def redis_level(url: str, visitors: int) -> dict:
    client = redis.Redis.from_url(url, max_connections=64)
    keys = Keys("kwbench")
    inv = Inventory(client, keys)
    room = WaitingRoom(inv.runner, keys)
    ev, pkgs = _event_of(7, 10_000_000)
    await inv.load(ev, pkgs, None)
    paused = RoomSettings(enabled=True, rate_per_second=100_000, paused=True)
    await room.configure(ev.id, paused)
    out: dict = {}
    before = (await client.info("memory"))["used_memory"]
    out["join_rate"], out["join_usec"], lat = await fill(room, ev.id, visitors)
    out["join_p50"], out["join_p99"] = _pct(lat, 0.5), _pct(lat, 0.99)
    after = (await client.info("memory"))["used_memory"]
    queue_key, proofs_key = keys.room(ev.id)[1], keys.room(ev.id)[4]
    out["queued"] = await client.zcard(queue_key)
    out["mem_total_per_visitor"] = (after - before) / visitors
    out["mem_queue_per_visitor"] = (await client.memory_usage(queue_key, samples=0)) / out["queued"]
    out["mem_proofs_per_visitor"] = (await client.memory_usage(proofs_key, samples=0)) / visitors
    out["read_rate"], out["read_usec"], lat = await _timed(
        client, lambda i: room.status(ev.id, buyer(random.randrange(visitors))), 100_000)
    out["read_p50"], out["read_p99"] = _pct(lat, 0.5), _pct(lat, 0.99)
    # ticks with nothing to admit (paused), then each admitting the most one tick may (1,000)
    out["idle_rate"], out["idle_usec"], lat = await _timed(client, lambda i: room.tick(ev.id), 20_000)
    await room.configure(ev.id, RoomSettings(enabled=True, rate_per_second=100_000))
    await client.config_resetstat()
    ticks = []
    for _ in range(50):
        t0 = time.perf_counter()
        figures = await room.tick(ev.id)
        ticks.append(((time.perf_counter() - t0) * 1000, figures.admitted_now))
    out["tick_usec"] = await _stats(client)
    out["tick_admitted"] = sum(n for _, n in ticks) / len(ticks)
    out["tick_ms_p50"] = _pct(sorted(ms for ms, _ in ticks), 0.5)
    out["queued_after"] = await client.zcard(queue_key)
    # passes all run out at once: a tick drops 1,000 of them and admits 1,000 more
    passes = keys.room(ev.id)[2]
    await client.zadd(passes, {m: 0 for m in await client.zrange(passes, 0, 49_999)})
    await client.config_resetstat()
    for _ in range(20):
        await room.tick(ev.id)
    out["expire_tick_usec"] = await _stats(client)
    await inv.close()
    await client.aclose()
    return out


def _wrk(url: str, cookie: str, seconds: int, connections: int) -> dict:
    run = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
                          "-H", f"Cookie: {cookie}", url], capture_output=True, text=True,
                         check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", run).group(1))
    p50 = re.search(r"50%\s+([\d.]+)(\w+)", run)
    p99 = re.search(r"99%\s+([\d.]+)(\w+)", run)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", run)

    def ms(m):
        return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    return {"rate": rate, "p50": ms(p50), "p99": ms(p99), "non2xx": int(bad.group(1)) if bad else 0}


def http_joins(base: str, event_id: int, seconds: int, connections: int) -> dict:
    """New visitors joining (loadtests/wrk_room_join.lua: challenge, then join, per visitor)."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency",
         "-s", str(Path(__file__).with_name("wrk_room_join.lua")), base],
        capture_output=True, text=True, check=True, env={**os.environ, "KWIKA_EVENT": str(event_id)})
    line = [x for x in out.stdout.splitlines() if x.startswith("KWIKA ")][-1]
    found = json.loads(line[6:])
    found["rate"] = found["joined"] / found["seconds"]
    return found


def http_level(args, redis_url: str) -> dict:
    db = TempDatabase(args.database_url)
    dsn = db.dsn
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": dsn, "KWIKA_PORT": str(port),
           "KWIKA_WORKERS": "2", "KWIKA_LOG_LEVEL": "WARNING", "KWIKA_REDIS_PREFIX": "kwhttp",
           "KWIKA_SECRET_KEY": "bench-secret-key-0123456789", "KWIKA_REDIS_MAX_CONNECTIONS": "200",
           "KWIKA_GUESTS_PER_IP_PER_MINUTE": "1000000", "KWIKA_ROOM_JOINS_PER_IP_PER_MINUTE": "0",
           "KWIKA_ROOM_JOIN_SPIKE": "0"}  # the server's cost, not the client's proof of work
    kwika = str(Path(sys.executable).parent / "kwika")
    subprocess.run([kwika, "migrate"], env=env, check=True)
    server = subprocess.Popen([kwika, "serve"], env=env)
    base = f"http://127.0.0.1:{port}"
    out: dict = {}
    try:
        wait_ready(base)
        token = _make_provider(dsn, base)
        event_id, _ = _event(base, token, 1_000_000)
        _call(base, "PATCH", f"/api/provider/events/{event_id}/room",
              {"enabled": True, "rate_per_second": 0.01, "difficulty": 0}, token)
        out["joins"] = {c: http_joins(base, event_id, args.seconds, c) for c in (50, 500)}

        async def preload() -> tuple[str, int]:
            client = redis.Redis.from_url(redis_url, max_connections=64)
            keys = Keys("kwhttp")
            room = WaitingRoom(Inventory(client, keys).runner, keys)
            await fill(room, event_id, args.visitors - await client.zcard(keys.room(event_id)[1]),
                       start=10**9)
            queued = await client.zcard(keys.room(event_id)[1])
            await client.aclose()
            return queued
        out["queued"] = asyncio.run(preload())
        # a visitor deep in the line reads their place: the status route, tick and ZRANK
        async def one_visitor() -> str:
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as s:
                async with s.get(f"{base}/api/events/{event_id}/room/challenge") as r:
                    c = await r.json()
                async with s.post(f"{base}/api/events/{event_id}/room/join", json={
                        "challenge": c["challenge"],
                        "solution": solve(c["challenge"], c["difficulty"])}) as r:
                    assert r.status == 200, await r.text()
            return "; ".join(f"{c.key}={c.value}" for c in jar)
        cookie = asyncio.run(one_visitor())
        url = f"{base}/api/events/{event_id}/room"
        _wrk(url, cookie, 2, 50)  # warm up
        out["reads"] = {c: _wrk(url, cookie, args.seconds, c) for c in (50, 500)}
    finally:
        server.terminate()
        server.wait(30)
        db.drop()
    return out


def report(args, load: str, r: dict, h: dict, load_after: str) -> str:
    joins = "\n".join(
        f"| joins, {c} connections (wrk: a challenge minting a guest, then the join; "
        f"difficulty 0) | {v['rate']:,.0f} joins/s | {v['p50_ms']:.1f} | {v['p99_ms']:.1f} | "
        f"{v['other']} not joined; latency is per request |" for c, v in h["joins"].items())
    reads = "\n".join(
        f"| position reads over HTTP, {c} connections (wrk) | {v['rate']:,.0f} reads/s | "
        f"{v['p50']:.1f} | {v['p99']:.1f} | {v['non2xx']} non-2xx |" for c, v in h["reads"].items())
    return f"""# Waiting room benchmark

Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on this machine (2 shared cores), `uptime` load
average before: {load}; after: {load_after}. One private `redis-server` (no persistence); the
client, Redis and (for HTTP) `kwika serve --workers 2` share the two cores. Command:
`python -m loadtests.bench_room --visitors {args.visitors} --seconds {args.seconds}`.

## Redis level (engine.room.WaitingRoom, one Python client process, {BATCH} calls in flight)

| operation | rate | p50 ms | p99 ms | Redis µs per call |
|---|---|---|---|---|
| join (filling the line to {r['queued']:,} visitors) | {r['join_rate']:,.0f} joins/s | {r['join_p50']:.2f} | {r['join_p99']:.2f} | {r['join_usec']:.1f} |
| position read at {r['queued']:,} queued (room_status: a tick, then ZRANK) | {r['read_rate']:,.0f} reads/s | {r['read_p50']:.2f} | {r['read_p99']:.2f} | {r['read_usec']:.1f} |
| admission tick, nothing to admit (paused), {r['queued']:,} queued | {r['idle_rate']:,.0f} ticks/s | - | - | {r['idle_usec']:.1f} |
| admission tick admitting {r['tick_admitted']:,.0f} visitors (the most one tick may) | - | {r['tick_ms_p50']:.2f} | - | {r['tick_usec']:.0f} |
| tick dropping 1,000 expired passes and admitting 1,000 | - | - | - | {r['expire_tick_usec']:.0f} |

After the admitting ticks {r['queued_after']:,} were still queued. Redis time per call does not
grow with the line: a join is one ZADD (O(log N)), a position one ZRANK (O(log N)), a tick pops
from the head (ZPOPMIN, O(log N) per visitor admitted); none scans the queue.

**Memory** (used_memory before and after {r['queued']:,} joins): **{r['mem_total_per_visitor']:.0f} bytes
per queued visitor** in all, of which the queue's sorted set is {r['mem_queue_per_visitor']:.0f} bytes
(member = the buyer key, 24 bytes here) and the used proof-of-work nonces
{r['mem_proofs_per_visitor']:.0f} bytes (kept only until the challenge expires, 2 minutes); so
1,000,000 queued visitors take about {r['mem_total_per_visitor'] * 1e6 / 2**20:,.0f} MiB while they join, and
{r['mem_queue_per_visitor'] * 1e6 / 2**20:,.0f} MiB once the nonces have expired.

## Through HTTP (`kwika serve --workers 2`)

| scenario | rate | p50 ms | p99 ms | notes |
|---|---|---|---|---|
{joins}
{reads}

The position reads are made by one visitor deep in a line of {h['queued']:,}: each is the status
route (the visitor's identity, a `room_status` script call that ticks and reads the place, and
the pass cookie check) answered as JSON.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--visitors", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--database-url", default=os.environ.get(
        "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    load = Path("/proc/loadavg").read_text().split()[:3]
    server = PrivateRedis()
    try:
        r = asyncio.run(redis_level(server.url, args.visitors))
        print(r, flush=True)
        asyncio.run(redis.Redis.from_url(server.url).flushall())
        h = http_level(args, server.url)
        print(h, flush=True)
    finally:
        server.stop()
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    text = report(args, " ".join(load), r, h, " ".join(load_after))
    (REPORTS / "room.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
