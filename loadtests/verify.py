"""After a load run: do Redis and Postgres agree that nothing was sold, paid or checked in twice?

    python -m loadtests.verify --event ID [--event ID ...] [--sweep-period S]

reads REDIS_URL, DATABASE_URL and KWIKA_REDIS_PREFIX as `kwika serve` does, prints each problem
and exits 1 on any (0: every check passed). Run it once the worker has drained the streams (the
orders, the emails and the check-ins); `verify()` is the same as a function returning the list.

For each event:
- `kwika audit` (engine.audit) is clean: Redis against itself and against the catalog and orders;
- no package has more valid or used tickets in Postgres than its capacity, and Redis sold as
  many as Postgres issued;
- no seat has two valid or used tickets;
- every succeeded payment has exactly one order, confirmed, with its tickets and a sent tickets
  email in email_log;
- no order or hold was paid twice (two succeeded payments, or two orders made from one hold);
- no live hold in Redis has outlived its expiry by more than the sweeper's period;
- every check-in is counted once: the gate register, its counts, the Postgres check-in log and
  the tickets' status agree, and no ticket is checked in twice in the log without an undo.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter

import asyncpg
import msgspec

from engine.audit import audit
from engine.checkin.offline import read_register
from engine.db import create_pool
from engine.inventory import Inventory
from engine.keys import Keys
from engine.settings import SettingsError, load_settings
from engine.sweeper import SWEEP_INTERVAL

LIVE = ("valid", "used")


async def verify(inventory: Inventory, pool: asyncpg.Pool, event_ids: list[int], *,
                 sweep_period: float = SWEEP_INTERVAL, grace_seconds: float = 60.0) -> list[str]:
    """Every problem found in `event_ids`' books, as sentences; empty when all is well."""
    problems: list[str] = []
    for event_id in event_ids:
        if await pool.fetchval("SELECT 1 FROM events WHERE id = $1", event_id) is None:
            problems.append(f"event {event_id}: not in the catalog (a wrong id verifies nothing)")
            continue
        found = [f"audit: {p}" for p in await audit(inventory, event_id, pool,
                                                      grace_seconds=grace_seconds)]
        found += await tickets_against_stock(inventory, pool, event_id)
        found += await seats_sold_twice(pool, event_id)
        found += await payments_fulfilled(pool, event_id)
        found += await paid_twice(pool, event_id)
        found += await stale_holds(inventory, event_id, sweep_period)
        found += await checkins_counted_once(inventory, pool, event_id)
        problems += [f"event {event_id}: {p}" for p in found]
    return problems


async def tickets_against_stock(inventory: Inventory, db, event_id: int) -> list[str]:
    """Tickets issued per package against its capacity and against what Redis sold."""
    rows = await db.fetch(
        "SELECT p.id, p.capacity, count(t.id) AS issued FROM ticket_packages p "
        "LEFT JOIN tickets t ON t.package_id = p.id AND t.status = ANY($2::text[]) "
        "WHERE p.event_id = $1 GROUP BY p.id ORDER BY p.id", event_id, list(LIVE))
    client, keys = inventory.client, inventory.keys
    stock = {k.decode(): int(v) for k, v in
             (await client.hgetall(keys.event(event_id, "stock"))).items()}
    # seats the catalog marked sold (sold elsewhere) count as sold in Redis, with no ticket here
    seats = await client.hgetall(keys.event(event_id, "seats"))
    outside = [sid for sid, state in seats.items() if state == b"s:catalog"]
    info = await client.hmget(keys.event(event_id, "seatinfo"), outside) if outside else []
    sold_elsewhere = Counter(msgspec.json.decode(raw)["p"] for raw in info if raw)
    problems = []
    for r in rows:
        pid, issued = r["id"], r["issued"]
        if issued > r["capacity"]:
            problems.append(f"package {pid}: {issued} tickets issued, capacity {r['capacity']}")
        sold = stock.get(f"{pid}:sold")
        if sold is not None:
            sold -= sold_elsewhere[pid]
        if sold is not None and sold != issued:
            problems.append(f"package {pid}: Redis sold {sold}, Postgres has {issued} tickets")
    return problems


async def seats_sold_twice(db, event_id: int) -> list[str]:
    rows = await db.fetch(
        "SELECT seat_id, array_agg(ticket_number ORDER BY ticket_number) AS numbers FROM tickets "
        "WHERE event_id = $1 AND seat_id IS NOT NULL AND status = ANY($2::text[]) "
        "GROUP BY seat_id HAVING count(*) > 1 ORDER BY seat_id", event_id, list(LIVE))
    return [f"seat {r['seat_id']} has {len(r['numbers'])} tickets: {list(r['numbers'])}"
            for r in rows]


async def payments_fulfilled(db, event_id: int) -> list[str]:
    """Each succeeded payment: one confirmed order, its tickets, its tickets email sent."""
    rows = await db.fetch(
        "SELECT p.reference, p.order_number, "
        "  (SELECT count(*) FROM orders o WHERE o.order_number = p.order_number) AS orders, "
        "  (SELECT string_agg(o.status, ',') FROM orders o WHERE o.order_number = p.order_number) "
        "    AS statuses, "
        "  (SELECT count(*) FROM tickets t JOIN orders o ON o.id = t.order_id "
        "    WHERE o.order_number = p.order_number AND t.status = ANY($2::text[])) AS tickets, "
        "  (SELECT string_agg(l.status, ',') FROM email_log l WHERE l.kind = 'tickets' "
        "    AND l.dedupe_key = p.order_number) AS emails "
        "FROM payments p WHERE p.event_id = $1 AND p.state = 'succeeded' ORDER BY p.reference",
        event_id, list(LIVE))
    problems = []
    for r in rows:
        what = f"payment {r['reference']} (order {r['order_number']})"
        if r["orders"] != 1:
            problems.append(f"{what} has {r['orders']} orders, not one")
            continue
        if r["statuses"] != "confirmed":
            problems.append(f"{what}: its order is {r['statuses']}, the payment succeeded")
        elif r["tickets"] == 0:
            problems.append(f"{what}: its order has no valid tickets")
        if r["emails"] != "sent":
            problems.append(f"{what}: its tickets email is {r['emails'] or 'missing'}, not sent")
    return problems


async def paid_twice(db, event_id: int) -> list[str]:
    """Money taken twice: two succeeded payments for one order, or for two orders of one hold
    (a second payment refunded automatically, `refund_due` and after, is money given back)."""
    by_order = await db.fetch(
        "SELECT order_number AS key, array_agg(reference ORDER BY reference) AS refs "
        "FROM payments WHERE event_id = $1 AND state = 'succeeded' "
        "GROUP BY order_number HAVING count(*) > 1", event_id)
    by_hold = await db.fetch(
        "SELECT hold_id AS key, array_agg(reference ORDER BY reference) AS refs "
        "FROM payments WHERE event_id = $1 AND state = 'succeeded' AND hold_id IS NOT NULL "
        "GROUP BY hold_id HAVING count(*) > 1", event_id)
    problems = [f"{what} {r['key']} was paid {len(r['refs'])} times: {list(r['refs'])}"
                for what, rows in (("order", by_order), ("hold", by_hold)) for r in rows]
    rows = await db.fetch(
        "SELECT hold_id, array_agg(order_number ORDER BY order_number) AS numbers FROM orders "
        "WHERE event_id = $1 AND status = 'confirmed' GROUP BY hold_id HAVING count(*) > 1",
        event_id)
    problems += [f"hold {r['hold_id']} became {len(r['numbers'])} orders: {list(r['numbers'])}"
                 for r in rows]
    return problems


class _LiveHold(msgspec.Struct):
    expires: int = 0


async def stale_holds(inventory: Inventory, event_id: int, sweep_period: float) -> list[str]:
    """Live holds whose expiry passed longer ago than the sweeper's period (Redis time)."""
    seconds, micros = await inventory.client.time()
    now_ms = seconds * 1000 + micros // 1000
    raw = await inventory.client.hgetall(inventory.keys.event(event_id, "holds"))
    late = []
    for hold_id, value in raw.items():
        expires = msgspec.json.decode(value, type=_LiveHold).expires
        if expires and now_ms - expires > sweep_period * 1000:
            late.append(f"{hold_id.decode()} ({(now_ms - expires) / 1000:.1f} s)")
    if not late:
        return []
    return [(f"{len(late)} live hold(s) outlived their expiry by more than the sweeper's "
             f"{sweep_period:g} s: {sorted(late)[:10]}")]


async def checkins_counted_once(inventory: Inventory, db, event_id: int) -> list[str]:
    """The gate register, its counts, the Postgres check-in log and the tickets table agree."""
    keys: Keys = inventory.keys
    register = await read_register(inventory.client, keys.event(event_id, "tickets"))
    in_register = {number for number, entry in register.items() if entry.s == "used"}
    counted = int(await inventory.client.hget(keys.event(event_id, "checkin:counts"), "in") or 0)
    log = await db.fetch("SELECT ticket_number, action FROM checkins WHERE event_id = $1 "
                         "ORDER BY at, id", event_id)
    net: Counter = Counter()
    twice = set()
    for row in log:
        net[row["ticket_number"]] += 1 if row["action"] == "in" else -1
        if net[row["ticket_number"]] > 1:
            twice.add(row["ticket_number"])
    in_log = {number for number, n in net.items() if n > 0}
    used = {r["ticket_number"] for r in await db.fetch(
        "SELECT ticket_number FROM tickets WHERE event_id = $1 AND status = 'used'", event_id)}
    problems = []
    if twice:
        problems.append(f"{len(twice)} ticket(s) checked in twice in the log without an undo: "
                        f"{sorted(twice)[:10]}")
    if counted != len(in_register):
        problems.append(f"the gate counts say {counted} checked in, the register has "
                        f"{len(in_register)}")
    for name, found in (("the Postgres check-in log", in_log), ("the tickets table", used)):
        if found != in_register:
            only_there = sorted(found - in_register)[:10]
            only_register = sorted(in_register - found)[:10]
            problems.append(f"{name} disagrees with the gate register: checked in only there "
                            f"{only_there}, only in the register {only_register}")
    return problems


async def _main(event_ids: list[int], sweep_period: float) -> int:
    import redis.asyncio as redis

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"verify: {exc}", file=sys.stderr)
        return 2
    if not (settings.redis_url and settings.database_url):
        print("verify: needs REDIS_URL and DATABASE_URL", file=sys.stderr)
        return 2
    client = redis.Redis.from_url(settings.redis_url)
    inventory = Inventory(client, Keys(settings.redis_prefix), settings.hold_ttl_seconds)
    pool = None
    try:
        pool = await create_pool(settings.database_url, 1, 2)
        problems = await verify(inventory, pool, event_ids, sweep_period=sweep_period,
                                grace_seconds=settings.audit_grace_seconds)
    except (OSError, asyncpg.PostgresError, redis.RedisError) as exc:
        print(f"verify: could not read the stores: {exc!r}", file=sys.stderr)
        return 2
    finally:
        await inventory.close()
        if pool is not None:
            await pool.close()
        await client.aclose()
    for problem in problems:
        print(f"FAIL {problem}")
    print(f"{len(problems)} problem(s) in {len(event_ids)} event(s)" if problems
          else f"all checks passed for {len(event_ids)} event(s)")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.verify", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--event", type=int, action="append", required=True, dest="events",
                        help="an event the run sold (repeat for several)")
    parser.add_argument("--sweep-period", type=float, default=SWEEP_INTERVAL,
                        help="seconds a live hold may outlive its expiry (the sweeper's period)")
    args = parser.parse_args(argv)
    return asyncio.run(_main(args.events, args.sweep_period))


if __name__ == "__main__":
    sys.exit(main())
