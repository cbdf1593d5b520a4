"""Auditing an event's books in Redis: the invariants every test and load test checks, and an
operator can run against a live event (`kwika audit EVENT_ID`).

The state is read in one MULTI/EXEC (all keys share the event's slot), so a sale in flight never
shows as a false alarm. Returns the problems found; an empty list means the books balance:
- per package: available + held + sold == capacity, none negative, held and sold equal the
  live holds and sales;
- every seat in exactly one state, agreeing with the holds and sales that name it;
- every buyer's count equals their tickets in live holds and sales.
"""

from __future__ import annotations

from collections import Counter

import msgspec

from engine.inventory import Inventory


async def audit(inventory: Inventory, event_id: int) -> list[str]:
    keys = dict(zip(("meta", "pkgs", "stock", "seats", "seatinfo", "holds", "expiry", "buyers",
                     "sales"), inventory.event_keys(event_id), strict=False))
    async with inventory.client.pipeline(transaction=True) as pipe:
        for name in ("stock", "holds", "sales", "seats", "buyers"):
            pipe.hgetall(keys[name])
        stock_raw, holds_raw, sales_raw, seats_raw, buyers_raw = await pipe.execute()
    problems: list[str] = []
    counters: dict[int, Counter] = {}
    for field, value in stock_raw.items():
        pid, name = field.decode().split(":")
        counters.setdefault(int(pid), Counter())[name] = int(value)
    holds = {k.decode(): msgspec.json.decode(v) for k, v in holds_raw.items()}
    sales = {k.decode(): msgspec.json.decode(v) for k, v in sales_raw.items()
             if not k.startswith(b"hold:")}
    seats = {k.decode(): v.decode() for k, v in seats_raw.items()}

    held, sold, per_buyer, seat_owner = Counter(), Counter(), Counter(), {}

    def take(record: dict, owner: str, marker: str, into: Counter) -> None:
        """Count one live hold or sale: its tickets, its buyer's, and the seats it names."""
        for pid, qty in record["lines"]:
            into[pid] += qty
            per_buyer[f"{record['buyer']}|{pid}"] += qty
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

    for pid, c in counters.items():
        if min(c["avail"], c["held"], c["sold"], c["cap"]) < 0:
            problems.append(f"package {pid} has a negative counter: {dict(c)}")
        if c["avail"] + c["held"] + c["sold"] != c["cap"]:
            problems.append(f"package {pid}: available {c['avail']} + held {c['held']} + sold "
                            f"{c['sold']} != capacity {c['cap']}")
        if c["held"] != held[pid]:
            problems.append(f"package {pid}: held {c['held']} but live holds have {held[pid]}")
        catalog_sold = sum(1 for v in seats.values() if v == "s:catalog")  # sold before loading
        if c["sold"] != sold[pid] and c["sold"] != sold[pid] + catalog_sold:
            problems.append(f"package {pid}: sold {c['sold']} but sales have {sold[pid]}")
    buyers = {k.decode(): int(v) for k, v in buyers_raw.items()}
    expected = {k: v for k, v in per_buyer.items() if v}
    if buyers != expected:
        wrong = sorted(set(buyers.items()) ^ set(expected.items()))[:10]
        problems.append(f"buyer counts disagree with holds and sales: {wrong}")
    return problems
