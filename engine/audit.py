"""Auditing an event's books: the invariants every test and load test checks, and an operator can
run against a live event (`kwika audit EVENT_ID`). It never gives a false all-clear.

Redis against itself (read in one MULTI/EXEC: all keys share the event's slot, so a sale in flight
never shows as a false alarm):
- per package: available + held + sold == capacity, none negative, held and sold equal the live
  holds and sales; for seated packages the seats in each state match the counters;
- every seat in exactly one state, agreeing with the holds and sales that name it;
- every buyer's counts (per package and for the event) equal their tickets in live holds and
  sales, and every basket names its buyer's one live hold.
Redis against Postgres (given a pool): an event the catalog has on sale is loaded, at the
committed catalog version; each package's capacity and every seat block agree with the catalog;
every order Postgres has a succeeded payment for is a sale in Redis.
Redis sales against Postgres orders (fulfillment's record):
- every order Postgres has confirmed is a sale in Redis, sold, with the same tickets (per package
  by quantity, and the same seats); one refunded or cancelled there is not sold in Redis;
- every sale in Redis older than `grace_seconds` (the fulfillment lag; Redis time) has its order
  in Postgres;
- every seat with a valid or used ticket in Postgres is sold in Redis to that ticket's order.
The gate register against the tickets table: every entry has its ticket's generation and attendee
name (engine/tickets/register.py; a row locked by a transfer under way is left out).
Returns the problems found; an empty list means the books balance.
"""

from __future__ import annotations

from collections import Counter

import asyncpg
import msgspec

from engine.inventory import EVENT_KEYS, Inventory
from engine.tickets.register import register_disagreements

_STATE_FIELD = {"a": "avail", "h": "held", "s": "sold"}


GRACE_SECONDS = 60.0  # a sale younger than this may not be written to Postgres yet


async def audit(inventory: Inventory, event_id: int, pool: asyncpg.Pool | None = None, *,
                grace_seconds: float = GRACE_SECONDS) -> list[str]:
    keys = dict(zip(EVENT_KEYS, inventory.event_keys(event_id), strict=True))
    names = ("meta", "stock", "holds", "sales", "seats", "buyers", "seatinfo")
    now = await inventory.client.time()  # Redis time (sales are stamped with it), before reading
    if isinstance(now, dict):  # a cluster answers per node
        now = min(now.values())
    seconds, micros = now
    async with inventory.client.pipeline(transaction=True) as pipe:
        for name in names:
            pipe.hgetall(keys[name])
        raw = dict(zip(names, await pipe.execute(), strict=True))
    problems = _redis_books(raw)
    if pool is not None:
        problems += await _against_catalog(pool, event_id, raw)
        if raw["meta"]:
            now_ms = seconds * 1000 + micros // 1000
            problems += await _against_orders(pool, event_id, raw, now_ms - grace_seconds * 1000)
        problems += [d.words(event_id) for d in await register_disagreements(
            pool, inventory.client, inventory.keys, event_id)]
    return problems


def _redis_books(raw: dict) -> list[str]:
    problems: list[str] = []
    counters: dict[int, Counter] = {}
    for field, value in raw["stock"].items():
        pid, name = field.decode().split(":")
        counters.setdefault(int(pid), Counter())[name] = int(value)
    holds = {k.decode(): msgspec.json.decode(v) for k, v in raw["holds"].items()}
    sales = {k.decode(): msgspec.json.decode(v) for k, v in raw["sales"].items()
             if not k.startswith(b"hold:")}
    seats = {k.decode(): v.decode() for k, v in raw["seats"].items()}
    seat_package = {k.decode(): msgspec.json.decode(v)["p"] for k, v in raw["seatinfo"].items()}

    held, sold, per_buyer, seat_owner = Counter(), Counter(), Counter(), {}

    def take(record: dict, owner: str, marker: str, into: Counter) -> None:
        """Count one live hold or sale: its tickets, its buyer's, and the seats it names."""
        for pid, qty in record["lines"]:
            into[pid] += qty
            per_buyer[f"{record['buyer']}|{pid}"] += qty
            per_buyer[f"{record['buyer']}|*"] += qty
        for seat in record.get("seats") or []:
            sid = str(seat[0])
            if sid in seat_owner:
                problems.append(f"seat {sid} is in {seat_owner[sid]} and {owner}")
            seat_owner[sid] = owner
            if seats.get(sid) != marker:
                problems.append(f"seat {sid} of {owner} is marked {seats.get(sid)!r}")

    for hold_id, hold in holds.items():
        take(hold, f"hold {hold_id}", f"h:{hold_id}", held)
    for order, sale in sales.items():
        if sale["state"] == "sold":
            take(sale, f"order {order}", f"s:{order}", sold)
    stray = sorted(sid for sid, state in seats.items()
                   if state[:2] in ("h:", "s:") and sid not in seat_owner and state != "s:catalog")
    if stray:
        problems.append(f"seats held or sold by nobody: {stray[:20]}")

    by_state: dict[int, Counter] = {}
    for sid, state in seats.items():
        field = _STATE_FIELD.get(state[:1])
        if field and sid in seat_package:
            by_state.setdefault(seat_package[sid], Counter())[field] += 1
    catalog_sold = Counter(seat_package.get(sid) for sid, v in seats.items() if v == "s:catalog")
    for pid, c in counters.items():
        if min(c["avail"], c["held"], c["sold"], c["cap"]) < 0:
            problems.append(f"package {pid} has a negative counter: {dict(c)}")
        if c["avail"] + c["held"] + c["sold"] != c["cap"]:
            problems.append(f"package {pid}: available {c['avail']} + held {c['held']} + sold "
                            f"{c['sold']} != capacity {c['cap']}")
        if c["held"] != held[pid]:
            problems.append(f"package {pid}: held {c['held']} but live holds have {held[pid]}")
        if c["sold"] != sold[pid] + catalog_sold[pid]:
            problems.append(f"package {pid}: sold {c['sold']} but sales have {sold[pid]}")
        if pid in by_state:
            seat_counts = {f: by_state[pid][f] for f in ("avail", "held", "sold")}
            if seat_counts != {f: c[f] for f in ("avail", "held", "sold")}:
                problems.append(f"package {pid}: its seats are {seat_counts} but its counters say "
                                f"{ {f: c[f] for f in ('avail', 'held', 'sold')} }")
    buyers, baskets = {}, {}
    for k, v in raw["buyers"].items():
        field = k.decode()
        if field.endswith("|b"):  # the buyer's basket, beside their counts
            baskets[field[:-2]] = v.decode()
        else:
            buyers[field] = int(v)
    expected = {k: v for k, v in per_buyer.items() if v}
    if buyers != expected:
        wrong = sorted(set(buyers.items()) ^ set(expected.items()))[:10]
        problems.append(f"buyer counts disagree with holds and sales: {wrong}")
    for buyer, hold_id in baskets.items():
        if hold_id not in holds or holds[hold_id]["buyer"] != buyer:
            problems.append(f"the basket of {buyer} names {hold_id}, which is not their live hold")
    for hold_id, hold in holds.items():
        if baskets.get(hold["buyer"]) != hold_id:
            problems.append(f"hold {hold_id} is not the basket of its buyer {hold['buyer']}")
    return problems


async def _against_catalog(pool: asyncpg.Pool, event_id: int, raw: dict) -> list[str]:
    event = await pool.fetchrow("SELECT status, catalog_version FROM events WHERE id = $1", event_id)
    if event is None:
        return [f"event {event_id} is not in the catalog"] if raw["meta"] else []
    meta = {k.decode(): v.decode() for k, v in raw["meta"].items()}
    if not meta:
        if event["status"] in ("published", "postponed"):
            return [f"the catalog has event {event_id} {event['status']} but Redis has no stock for it"]
        return []
    problems: list[str] = []
    if int(meta.get("version", 0)) != event["catalog_version"] or "pending" in meta:
        problems.append(f"Redis has catalog version {meta.get('version', 0)}"
                        f"{' (a narrowing load pending)' if 'pending' in meta else ''}, the catalog "
                        f"{event['catalog_version']}: reconciliation has not caught up")
    packages = await pool.fetch(
        "SELECT p.id, p.capacity, EXISTS (SELECT 1 FROM sections c WHERE c.package_id = p.id) "
        "AS seated FROM ticket_packages p WHERE p.event_id = $1", event_id)
    seat_rows = await pool.fetch(
        "SELECT s.id, s.status, c.package_id FROM seats s JOIN sections c ON c.id = s.section_id "
        "WHERE c.event_id = $1 AND c.package_id IS NOT NULL", event_id)
    stock = {k.decode(): int(v) for k, v in raw["stock"].items()}
    seats = {int(k): v.decode() for k, v in raw["seats"].items()}
    on_sale_seats = Counter()
    for row in seat_rows:
        live = seats.get(row["id"])
        if live is None:
            problems.append(f"seat {row['id']} of the catalog is not in Redis")
            continue
        if (row["status"] == "blocked") != (live == "b"):
            problems.append(f"seat {row['id']} is {row['status']} in the catalog but "
                            f"{'blocked' if live == 'b' else 'not blocked'} in Redis")
        if live not in ("b", "x"):
            on_sale_seats[row["package_id"]] += 1
    for p in packages:
        pid = p["id"]
        if f"{pid}:cap" not in stock:
            problems.append(f"package {pid} of the catalog is not in Redis")
            continue
        want = (on_sale_seats[pid] if p["seated"]
                else max(0, p["capacity"] - stock.get(f"{pid}:withdrawn", 0)))
        if stock[f"{pid}:cap"] != want:
            problems.append(f"package {pid}: capacity {stock[f'{pid}:cap']} in Redis, "
                            f"{want} by the catalog")
    sold = {k.decode() for k, v in raw["sales"].items()
            if not k.startswith(b"hold:") and msgspec.json.decode(v)["state"] == "sold"}
    paid = await pool.fetch("SELECT DISTINCT order_number FROM payments WHERE event_id = $1 "
                            "AND state = 'succeeded'", event_id)
    missing = sorted(r["order_number"] for r in paid if r["order_number"] not in sold)
    if missing:
        problems.append(f"{len(missing)} paid order(s) are not sold in Redis: {missing[:10]}")
    return problems


def _count(lines) -> Counter:
    counted: Counter = Counter()
    for pid, qty, *_ in lines:
        counted[int(pid)] += int(qty)
    return counted


async def _against_orders(pool: asyncpg.Pool, event_id: int, raw: dict, settled_before: float
                          ) -> list[str]:
    rows = await pool.fetch(
        "SELECT o.order_number, o.status, t.package_id, t.seat_id FROM orders o LEFT JOIN tickets t "
        "ON t.order_id = o.id AND t.status IN ('valid', 'used') WHERE o.event_id = $1", event_id)
    written: dict[str, tuple[str, Counter, set[int]]] = {}
    for r in rows:
        _status, ga, seats = written.setdefault(r["order_number"], (r["status"], Counter(), set()))
        if r["seat_id"] is not None:
            seats.add(r["seat_id"])
        elif r["package_id"] is not None:
            ga[r["package_id"]] += 1
    sales = {k.decode(): msgspec.json.decode(v) for k, v in raw["sales"].items()
             if not k.startswith(b"hold:")}
    live_seats = {int(k): v.decode() for k, v in raw["seats"].items()}
    problems: list[str] = []
    missing, differ, unsold, wrong_seats = [], [], [], []
    for number, (status, ga, seats) in sorted(written.items()):
        sale = sales.get(number)
        sold = sale is not None and sale["state"] == "sold"
        if status != "confirmed":
            if sold:
                unsold.append(f"{number} ({status})")
            continue
        if not sold:
            missing.append(number)
            continue
        if _count(sale.get("ga") or []) != ga or {int(x[0]) for x in sale.get("seats") or []} != seats:
            differ.append(number)
        wrong_seats += [f"{sid} ({live_seats.get(sid)!r})" for sid in sorted(seats)
                        if live_seats.get(sid) != f"s:{number}"]
    unwritten = sorted(n for n, sale in sales.items()
                       if sale["state"] == "sold" and n not in written and sale.get("at", 0) <= settled_before)
    for found, what in (
            (missing, "order(s) Postgres has confirmed are not sold in Redis"),
            (differ, "order(s) have other tickets in Postgres than in Redis"),
            (unsold, "order(s) refunded or cancelled in Postgres are sold in Redis"),
            (wrong_seats, "seat(s) with a valid ticket in Postgres are not sold to its order in Redis"),
            (unwritten, ("sale(s) in Redis older than the grace period have no order in Postgres "
                        "(fulfillment behind or failing?)"))):
        if found:
            problems.append(f"{len(found)} {what}: {found[:10]}")
    return problems
