"""The gate register (`{ev}:tickets`, engine/tickets/gate.py, scripts/lua/register_tickets.lua)
only moves forward: an order entry handled again with a stale read, or Redis restored from an
older copy, never brings back a code a transfer replaced nor undoes a check-in; a restore brings
the register up to the tickets table before the event opens (real Redis and Postgres)."""
# ruff: noqa: F811  (the fixtures of tests/test_my_tickets.py are imported by name)

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import msgspec
import pytest
from redis.exceptions import ResponseError

from engine.onsale import reconcile_once
from engine.tickets import gate
from fulfillment import issuing
from storefront.appkeys import CATALOG, DB, INVENTORY, KEYS, REDIS
from tests.test_my_tickets import KEYRING, client, sold  # noqa: F401  (fixtures)


def _entry(s="valid", g=1, n="Ann", **more):
    return msgspec.json.encode({"s": s, "g": g, "p": 7, "seat": None, "n": n, **more})


async def test_an_order_entry_handled_again_never_rolls_the_gate_register_back(
        client, sold, monkeypatch):
    """The issuer reads the tickets, a transfer lands, then the issuer writes: the register keeps
    the transfer's generation and holder (a blind HSET put generation 1 back)."""
    app, a = client.server.app, sold["a"]
    number, event_id = sold["tickets"]["ORD-1-A"][0], sold["soon"]["id"]
    read, go = asyncio.Event(), asyncio.Event()
    real = issuing.gate_tickets

    async def slow_read(pool, order_number):
        found = await real(pool, order_number)
        read.set()
        await go.wait()
        return found

    monkeypatch.setattr(issuing, "gate_tickets", slow_read)
    issuer = issuing.Issuer(app[DB], app[REDIS], app[KEYS])
    again = asyncio.create_task(issuer(SimpleNamespace(event_id=event_id, order_number="ORD-1-A")))
    await read.wait()
    answer = await client.post(f"/api/tickets/{number}/transfer", headers=a.h,
                               json={"name": "New Holder", "email": "new@example.test"})
    assert answer.status == 200, await answer.text()
    go.set()
    await again
    gate_entry = msgspec.json.decode(await app[REDIS].hget(app[KEYS].event(event_id, "tickets"), number))
    assert (gate_entry["g"], gate_entry["n"]) == (2, "New Holder"), gate_entry


async def test_the_issuer_run_again_keeps_a_check_in_the_record_has_not_seen(client, sold):
    app = client.server.app
    number, event_id = sold["tickets"]["ORD-1-A"][0], sold["soon"]["id"]
    register = app[KEYS].event(event_id, "tickets")
    used = msgspec.json.decode(await app[REDIS].hget(register, number))
    used.update(s="used", at="2030-01-01T19:00:00Z")  # the gate's check-in fields
    await app[REDIS].hset(register, number, msgspec.json.encode(used))
    await issuing.Issuer(app[DB], app[REDIS], app[KEYS])(
        SimpleNamespace(event_id=event_id, order_number="ORD-1-A"))
    assert msgspec.json.decode(await app[REDIS].hget(register, number)) == used


async def test_restoring_from_an_older_copy_brings_the_gate_register_back_to_the_record(
        client, sold):
    """A transfer bumps a ticket to generation 2; Redis comes back from a copy taken before it:
    the restore brings the register up to the record before the event opens, so the seller's
    revoked code is refused and the new holder's admitted."""
    app, a = client.server.app, sold["a"]
    number, event_id = sold["tickets"]["ORD-1-A"][0], sold["soon"]["id"]
    register = app[KEYS].event(event_id, "tickets")
    before = await app[REDIS].hget(register, number)  # what the older copy holds
    assert msgspec.json.decode(before)["g"] == 1
    answer = await client.post(f"/api/tickets/{number}/transfer", headers=a.h,
                               json={"name": "New Holder", "email": "new@example.test"})
    assert answer.status == 200, await answer.text()
    # Redis restarts from the older copy: its register, and a run id the record never saw
    await app[REDIS].hset(register, number, before)
    await app[REDIS].delete(app[KEYS].reconciled_epoch())
    await reconcile_once(app[CATALOG], app[INVENTORY])
    assert await app[DB].fetchval(
        "SELECT generation FROM tickets WHERE ticket_number = $1", number) == 2
    entry = msgspec.json.decode(await app[REDIS].hget(register, number))
    assert (entry["g"], entry["n"], entry["s"]) == (2, "New Holder", "valid")


async def test_a_restore_keeps_used_tickets_used_and_adds_what_the_copy_lacks(client, sold):
    app = client.server.app
    first, second = sold["tickets"]["ORD-1-A"][:2]
    event_id = sold["soon"]["id"]
    register = app[KEYS].event(event_id, "tickets")
    await app[DB].execute("UPDATE tickets SET status = 'used' WHERE ticket_number = $1", first)
    await app[REDIS].hdel(register, second)  # the older copy never had it
    await app[REDIS].delete(app[KEYS].reconciled_epoch())
    await reconcile_once(app[CATALOG], app[INVENTORY])
    assert msgspec.json.decode(await app[REDIS].hget(register, first))["s"] == "used"
    assert msgspec.json.decode(await app[REDIS].hget(register, second))["s"] == "valid"


async def test_the_script_moves_only_forward_and_refuses_bad_input_before_writing(client):
    r, key = client.server.app[REDIS], "kwtest:{gate}:tickets"
    await r.delete(key)
    await r.hset(key, mapping={"T1": _entry(g=3), "T2": _entry(s="used", at="x"),
                               "T3": _entry(s="refunded")})
    script = r.register_script(gate._SCRIPT.source)
    incoming = ["T1", _entry(g=2, n="Old"), "T2", _entry(g=2, n="Bea"), "T3", _entry(),
                "T4", _entry(n="Dan"), "T1", _entry(s="used", g=3)]
    assert await script(keys=[key], args=incoming) == 3  # T2 to g2 (still used), T4, T1 used
    got = {k.decode(): msgspec.json.decode(v) for k, v in (await r.hgetall(key)).items()}
    assert (got["T1"]["g"], got["T1"]["s"], got["T1"]["n"]) == (3, "used", "Ann")
    assert (got["T2"]["g"], got["T2"]["s"], got["T2"]["n"], got["T2"]["at"]) == (2, "used", "Bea", "x")
    assert got["T3"]["s"] == "refunded" and got["T4"]["n"] == "Dan"
    snapshot = await r.hgetall(key)
    for bad in (["T5", _entry(), "T6", b'{"s":"valid","g":0,"p":7,"seat":null,"n":"x"}'],
                ["T5", _entry(), "T6"], [], ["T5", _entry()] * 501, ["", _entry()],
                ["T5", b"not json"], ["T5", _entry(s="lost")]):
        with pytest.raises(ResponseError):  # an error reply: it must have written nothing
            await script(keys=[key], args=bad)
        assert await r.hgetall(key) == snapshot
    # more than one call's worth goes in batches
    many = [(f"B{i}", gate.GateTicket(s="valid", g=1, p=7, seat=None, n="x")) for i in range(1203)]
    assert await gate.register(r, key, many) == 1203
    assert await r.hlen(key) == 4 + 1203
    await r.delete(key)
