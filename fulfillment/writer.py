"""The Postgres writer: one confirmed sale (an orders-stream entry) becomes an order, its tickets,
a history row and the sold counters, in one transaction, idempotent on the order number.

A second valid ticket for one seat of one event is impossible: the UNIQUE index
`tickets_one_per_seat` refuses it and the entry goes to the dead letters with that reason (it
would mean Redis sold a seat twice; it must be seen, never written).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import msgspec

from engine.orders import SaleRecord
from engine.tickets import new_ticket_number


class Malformed(Exception):
    """An entry that can never be written as it is (its reason goes to the dead letters)."""


class StreamSale(msgspec.Struct, kw_only=True):
    """The `sale` field of an orders-stream entry, as scripts/lua/confirm.lua writes it."""

    order: str
    hold: str
    buyer: str
    at: int  # ms since the epoch, Redis time
    state: str = "sold"


@dataclass(frozen=True)
class Entry:
    event_id: int
    order_number: str
    sale: StreamSale
    record: SaleRecord


def _lists(raw: bytes) -> bytes:
    # cjson writes an empty Lua table as {} where a list was meant
    return raw.replace(b'"ga":{}', b'"ga":[]').replace(b'"seats":{}', b'"seats":[]').replace(
        b'"attendees":{}', b'"attendees":[]').replace(b'"lines":{}', b'"lines":[]')


def read_entry(event_id: int, fields: dict[bytes, bytes]) -> Entry:
    """An orders-stream entry (engine.orders.SaleRecord documents the format); Malformed when it
    is not one."""
    try:
        if fields.get(b"type") != b"sale":
            raise Malformed(f"not a sale entry: type {fields.get(b'type')!r}")
        sale = msgspec.json.decode(_lists(fields[b"sale"]), type=StreamSale)
        record = msgspec.json.decode(_lists(fields[b"extra"]), type=SaleRecord)
        order = fields[b"order"].decode()
    except KeyError as exc:
        raise Malformed(f"a field is missing: {exc}") from None
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise Malformed(f"unreadable: {exc}") from None
    if not (order == sale.order == record.order_number):
        raise Malformed(f"order numbers disagree: {order}, {sale.order}, {record.order_number}")
    tickets = sum(q for _, q, _ in record.ga) + len(record.seats)
    if tickets == 0 or len(record.attendees) not in (0, tickets):
        raise Malformed(f"{tickets} tickets but {len(record.attendees)} attendees")
    return Entry(event_id, order, sale, record)


async def write_sale(conn: asyncpg.Connection, entry: Entry) -> bool:
    """Write the order, its tickets, its history row and the sold counters; False when the order
    was written before (the same entry delivered again). Raises Malformed for a sale Postgres
    refuses for good (a seat that already has a valid ticket, an unknown package)."""
    record = entry.record
    user_id = int(record.buyer[2:]) if record.buyer.startswith("u:") else None
    sold_at = datetime.fromtimestamp(entry.sale.at / 1000, tz=UTC)
    async with conn.transaction():
        order_id = await conn.fetchval(
            """INSERT INTO orders (order_number, event_id, hold_id, buyer, user_id, email, buyer_name,
                                   phone, billing, subtotal, fees, total, currency,
                                   payment_reference, sold_at)
               VALUES ($1, $2, $3, $4, (SELECT id FROM users WHERE id = $5), $6, $7, $8, $9, $10,
                       $11, $12, $13, $14, $15)
               ON CONFLICT (order_number) DO NOTHING RETURNING id""",
            entry.order_number, entry.event_id, record.hold_id, record.buyer, user_id,
            record.billing.email, record.billing.name, record.billing.phone,
            msgspec.json.encode(record.billing).decode(), record.subtotal, record.fees,
            record.total, record.currency, record.payment, sold_at)
        if order_id is None:
            return False
        units = [(pid, None, price) for pid, qty, price in record.ga for _ in range(qty)]
        units += [(pid, sid, price) for sid, pid, price in record.seats]
        attendees = record.attendees or [record.billing] * len(units)
        rows = [(new_ticket_number(entry.event_id), order_id, entry.event_id, pid, sid, price,
                 person.name, person.email, person.phone)
                for (pid, sid, price), person in zip(units, attendees, strict=True)]
        try:
            async with conn.transaction():  # a savepoint: the refusal is reported, not a crash
                await conn.copy_records_to_table(
                    "tickets", records=rows,
                    columns=["ticket_number", "order_id", "event_id", "package_id", "seat_id",
                             "price", "attendee_name", "attendee_email", "attendee_phone"])
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "tickets_one_per_seat":
                raise Malformed(f"a seat of order {entry.order_number} already has a valid ticket: "
                                f"{exc.detail}") from None
            raise
        except asyncpg.ForeignKeyViolationError as exc:
            raise Malformed(f"order {entry.order_number} names what the catalog lacks: "
                            f"{exc.detail}") from None
        await conn.execute(
            "INSERT INTO order_history (order_id, change, detail) VALUES ($1, 'confirmed', $2)",
            order_id, msgspec.json.encode({"tickets": len(rows), "total": record.total,
                                           "payment": record.payment,
                                           "restored": record.restored}).decode())
        await conn.execute("UPDATE events SET tickets_sold = tickets_sold + $2 WHERE id = $1",
                           entry.event_id, len(rows))
        per_package = Counter(pid for pid, _, _ in units)
        await conn.executemany("UPDATE ticket_packages SET sold = sold + $2 WHERE id = $1",
                               list(per_package.items()))
    return True
