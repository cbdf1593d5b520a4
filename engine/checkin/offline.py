"""What an offline gate carries: the event's public keys and every ticket's state, read from the
gate register. Format (version 1), compact so that a phone downloads 50,000 tickets in a
second or two (about 40 bytes each before compression):

    {"v": 1, "event_id": 42, "as_of": <server ms>, "version": "<sha-256 prefix of the content>",
     "keys": [{"kid", "public_key": <32 bytes, base64>}],
     "packages": {"<id>": "<name>"}, "seats": {"<id>": "<words>"},
     "tickets": [[serial, generation, status, name, package id, seat id | 0, at ms | 0, gate], ...]}

status: "v" valid, "u" used, "r" refunded, "c" cancelled, "x" revoked. The ticket number is
`TKT-{event_id}-{serial}`. `version` changes whenever anything in the list does, so a gate
asks with `If-None-Match` and downloads only when something changed. The gate verifies each
payload with the keys (WebCrypto Ed25519), admits only `v` tickets of the payload's generation,
marks them used locally and syncs its check-ins through `GateDesk.sync` when it is back online.
"""

from __future__ import annotations

import hashlib

import msgspec
import redis.asyncio as redis

from engine.checkin.desk import GateTicket
from engine.tickets.keyring import Keyring

VERSION = 1
STATUS = {"valid": "v", "used": "u", "refunded": "r", "cancelled": "c", "revoked": "x"}


class _Entry(msgspec.Struct):
    s: str = ""
    g: int = 0
    p: int = 0
    seat: int | None = None
    n: str = ""
    at: int | None = None
    gate: str | None = None


async def read_register(client: redis.Redis, key: str) -> dict[str, _Entry]:
    found: dict[str, _Entry] = {}
    async for number, raw in client.hscan_iter(key, count=1000):
        try:
            found[number.decode()] = msgspec.json.decode(raw, type=_Entry)
        except msgspec.DecodeError:
            continue  # an unreadable entry admits nobody offline
    return found


async def gate_list(client: redis.Redis, register_key: str, event_id: int, keyring: Keyring,
                    packages: dict[int, str], seats: dict[int, str], as_of: int) -> dict:
    """The offline list of `event_id` (module docstring)."""
    prefix = f"TKT-{event_id}-"
    tickets = sorted(
        [number.removeprefix(prefix), e.g, STATUS.get(e.s, "x"), e.n, e.p, e.seat or 0,
         e.at or 0, e.gate or ""]
        for number, e in (await read_register(client, register_key)).items()
        if number.startswith(prefix))
    used_seats = {t[5] for t in tickets if t[5]}
    body = {"keys": [{"kid": kid, "public_key": keyring.public_key_text(kid)}
                     for kid in keyring.kids],
            "packages": {str(k): v for k, v in packages.items()},
            "seats": {str(k): v for k, v in seats.items() if k in used_seats},
            "tickets": tickets}
    version = hashlib.sha256(msgspec.json.encode(body)).hexdigest()[:20]
    return {"v": VERSION, "event_id": event_id, "as_of": as_of, "version": version, **body}


def shown(entry: GateTicket, packages: dict[int, str], seats: dict[int, str]) -> dict:
    """A register entry in the words a gate shows."""
    return {"ticket_number": entry.t, "status": entry.s, "attendee": entry.n,
            "package": packages.get(entry.p or 0), "seat": seats.get(entry.seat or 0),
            "checked_in_at": entry.at, "gate": entry.gate}
