"""The gate register (`Keys.event(event_id, "tickets")`, format v1 of fulfillment/issuing.py)
against the record: each ticket's generation and attendee name in the register should be the
`tickets` row's. A transfer writes the register just before its commit (engine/tickets/holders.py)
and puts it back when the transaction fails; should the process die in between, the register is
left ahead of the record (the buyer's code refused at the gate, the new one never issued). A
register restored from an older copy is behind it (the revoked code admitted).

`level_register` finds the disagreements and, with `repair`, brings the register to the record:
Postgres wins, so the generation goes back only ever to the record's own value. A ticket whose
row is locked has a transfer under way (it writes the register under that lock) and is left for
the next round; under the lock the register and the record are compared again, and the gate's
status of the entry (a check-in not yet written back) is never touched. Entries the register
lacks are the issuer's to write and are not looked at here.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import msgspec
import redis.asyncio as redis

from engine.keys import Keys
from engine.lua import load_script


class _Entry(msgspec.Struct):
    g: int = 0
    n: str = ""


@dataclass(frozen=True)
class Disagreement:
    ticket_number: str
    register: tuple[int, str]  # generation, name
    record: tuple[int, str]

    def words(self, event_id: int) -> str:
        return (f"event {event_id}: the gate register has ticket {self.ticket_number} at "
                f"generation {self.register[0]} ({self.register[1]!r}) but the record has "
                f"generation {self.record[0]} ({self.record[1]!r})")


def _entry(raw: bytes | None) -> _Entry | None:
    if raw is None:
        return None
    try:
        return msgspec.json.decode(raw, type=_Entry)
    except msgspec.DecodeError:
        return _Entry(g=-1, n="(unreadable)")


async def register_disagreements(pool: asyncpg.Pool, client: redis.Redis, keys: Keys,
                                 event_id: int, *, repair: bool = False,
                                 only: list[str] | None = None) -> list[Disagreement]:
    """The tickets of `event_id` (or just `only`) whose register entry disagrees with the record,
    confirmed under their row locks; with `repair`, each is brought level with the record."""
    register = keys.event(event_id, "tickets")
    if only is None:
        raw = {k.decode() if isinstance(k, bytes) else k: v
               for k, v in (await client.hgetall(register)).items()}
        rows = await pool.fetch(
            "SELECT ticket_number, generation, attendee_name FROM tickets WHERE event_id = $1",
            event_id)
    else:
        values = await client.hmget(register, only) if only else []
        raw = dict(zip(only, values, strict=True))
        rows = await pool.fetch(
            "SELECT ticket_number, generation, attendee_name FROM tickets "
            "WHERE event_id = $1 AND ticket_number = ANY($2::text[])", event_id, only)
    suspects = []
    for r in rows:
        entry = _entry(raw.get(r["ticket_number"]))
        if entry is not None and (entry.g, entry.n) != (r["generation"], r["attendee_name"]):
            suspects.append(r["ticket_number"])
    if not suspects:
        return []
    found: list[Disagreement] = []
    level = client.register_script(load_script("ticket_level").source) if repair else None
    async with pool.acquire() as conn, conn.transaction():
        locked = await conn.fetch(  # a locked row has a transfer under way: the next round's
            "SELECT ticket_number, generation, attendee_name FROM tickets "
            "WHERE event_id = $1 AND ticket_number = ANY($2::text[]) "
            "ORDER BY id FOR UPDATE SKIP LOCKED", event_id, suspects)
        if not locked:
            return []
        numbers = [r["ticket_number"] for r in locked]
        now = dict(zip(numbers, await client.hmget(register, numbers), strict=True))
        for r in locked:
            number, record = r["ticket_number"], (r["generation"], r["attendee_name"])
            entry = _entry(now[number])
            if entry is None or (entry.g, entry.n) == record:
                continue
            found.append(Disagreement(number, (entry.g, entry.n), record))
            if level is not None:
                await level(keys=[register], args=[number, record[0], record[1]])
    return found


async def level_register(pool: asyncpg.Pool, client: redis.Redis, keys: Keys, event_id: int,
                         *, only: list[str] | None = None) -> int:
    """Bring the gate register of `event_id` level with the record; how many entries changed."""
    return len(await register_disagreements(pool, client, keys, event_id, repair=True, only=only))
