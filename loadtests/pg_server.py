"""The PostgreSQL row-lock baseline behind the same HTTP stack as Kwika (aiohttp, uvloop, several
processes on one port), for the `pg-baseline` load scenario: `POST /api/events/{id}/holds` with
Kwika's body (`{"items": [{"package_id", "quantity"}]}`) takes the quantity from the package's
row in one transaction (`UPDATE ... SET remaining = remaining - q WHERE remaining >= q`, then the
hold's INSERT: loadtests/pg_baseline.py) and answers 201 or 409 `sold_out`.

    python -m loadtests.pg_server --dsn DSN --port N [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys

import asyncpg
from aiohttp import web

SCHEMA = """
CREATE TABLE IF NOT EXISTS bench_stock (id int PRIMARY KEY, capacity int NOT NULL,
                                        remaining int NOT NULL CHECK (remaining >= 0));
CREATE TABLE IF NOT EXISTS bench_holds (id bigserial PRIMARY KEY, stock_id int NOT NULL,
                                        buyer text NOT NULL, qty int NOT NULL,
                                        expires_at timestamptz NOT NULL);
"""
POOL = web.AppKey("pool", asyncpg.Pool)


async def hold(request: web.Request) -> web.Response:
    try:
        body = await request.json()
        item = body["items"][0]
        stock_id, qty = int(item["package_id"]), int(item["quantity"])
    except (ValueError, KeyError, IndexError, TypeError):
        return web.json_response({"error": "bad_input"}, status=422)
    if not 1 <= qty <= 10:
        return web.json_response({"error": "bad_input"}, status=422)
    buyer = request.headers.get("X-Forwarded-For", "anonymous")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        left = await conn.fetchval(
            "UPDATE bench_stock SET remaining = remaining - $2 WHERE id = $1 AND remaining >= $2 "
            "RETURNING remaining", stock_id, qty)
        if left is None:
            return web.json_response({"error": "sold_out"}, status=409)
        hold_id = await conn.fetchval(
            "INSERT INTO bench_holds (stock_id, buyer, qty, expires_at) "
            "VALUES ($1, $2, $3, now() + interval '15 minutes') RETURNING id", stock_id, buyer, qty)
    return web.json_response({"id": str(hold_id), "items": [
        {"package_id": stock_id, "quantity": qty}]}, status=201)


async def ready(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def serve(dsn: str, sock: socket.socket) -> None:
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass

    async def pool_ctx(app: web.Application):
        app[POOL] = await asyncpg.create_pool(dsn, min_size=2, max_size=20)
        yield
        await app[POOL].close()

    app = web.Application()
    app.cleanup_ctx.append(pool_ctx)
    app.router.add_post(r"/api/events/{event_id:\d+}/holds", hold)
    app.router.add_get("/readyz", ready)
    web.run_app(app, sock=sock, print=None, access_log=None)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.pg_server")
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    async def schema() -> None:
        conn = await asyncpg.connect(args.dsn)
        await conn.execute(SCHEMA)
        await conn.close()

    asyncio.run(schema())
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(1024)
    children = []
    for _ in range(args.workers):
        pid = os.fork()
        if pid == 0:
            serve(args.dsn, sock)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
