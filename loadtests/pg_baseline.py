"""The baseline most ticket systems use: a PostgreSQL row lock per hold.

Two variants of the same hold (take `qty` from one package's remaining stock and record the hold):
- `update`: `UPDATE stock SET remaining = remaining - qty WHERE id = $1 AND remaining >= qty
  RETURNING remaining` then an INSERT, in one transaction;
- `for_update`: `SELECT remaining ... FOR UPDATE`, check in Python, UPDATE, INSERT.
"""

from __future__ import annotations

import asyncpg

SCHEMA = """
DROP TABLE IF EXISTS bench_holds;
DROP TABLE IF EXISTS bench_stock;
CREATE TABLE bench_stock (id int PRIMARY KEY, capacity int NOT NULL,
                          remaining int NOT NULL CHECK (remaining >= 0));
CREATE TABLE bench_holds (id bigserial PRIMARY KEY, stock_id int NOT NULL, buyer text NOT NULL,
                          qty int NOT NULL, expires_at timestamptz NOT NULL);
"""


async def setup(pool: asyncpg.Pool, capacity: int) -> None:
    async with pool.acquire() as conn:
        await conn.execute(SCHEMA)
        await conn.execute("INSERT INTO bench_stock VALUES (1, $1, $1)", capacity)


async def hold_update(pool: asyncpg.Pool, buyer: str, qty: int = 1) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        left = await conn.fetchval(
            "UPDATE bench_stock SET remaining = remaining - $2 WHERE id = $1 AND remaining >= $2 "
            "RETURNING remaining", 1, qty)
        if left is None:
            return False
        await conn.execute("INSERT INTO bench_holds (stock_id, buyer, qty, expires_at) "
                           "VALUES (1, $1, $2, now() + interval '15 minutes')", buyer, qty)
        return True


async def hold_for_update(pool: asyncpg.Pool, buyer: str, qty: int = 1) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        remaining = await conn.fetchval("SELECT remaining FROM bench_stock WHERE id = 1 FOR UPDATE")
        if remaining < qty:
            return False
        await conn.execute("UPDATE bench_stock SET remaining = remaining - $1 WHERE id = 1", qty)
        await conn.execute("INSERT INTO bench_holds (stock_id, buyer, qty, expires_at) "
                           "VALUES (1, $1, $2, now() + interval '15 minutes')", buyer, qty)
        return True


async def verify(pool: asyncpg.Pool) -> tuple[int, int, int]:
    """(capacity, remaining, held) — held + remaining must equal capacity."""
    row = await pool.fetchrow("SELECT capacity, remaining FROM bench_stock WHERE id = 1")
    held = await pool.fetchval("SELECT coalesce(sum(qty), 0) FROM bench_holds")
    return row["capacity"], row["remaining"], held
