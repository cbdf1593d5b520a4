"""Scanning at the gate (real Redis and Postgres): the signature first, then one script that
admits a ticket exactly once, whatever the concurrency; every refusal has its answer; check-ins
reach Postgres through the stream, once, even when a worker dies; bad input changes nothing."""
# ruff: noqa: F811  (fixtures imported by name)

from __future__ import annotations

import asyncio
import io
from types import SimpleNamespace

import msgspec

from engine.tickets import Keyring, gate
from fulfillment.checkins import GROUP, CheckinWriter
from fulfillment.issuing import Issuer
from storefront.appkeys import DB, KEYS, REDIS
from tests.gate_helpers import KEYRING, client, payload, sell_event  # noqa: F401

SCAN = "/api/scan"


def writer(app, **kw) -> CheckinWriter:
    return CheckinWriter(app[REDIS], app[KEYS], app[DB], **kw)


async def scan(client, actor, event_id, code, gate="North"):
    resp = await client.post(SCAN, json={"event_id": event_id, "code": code, "gate": gate},
                             headers=actor.h)
    return resp.status, await resp.json()


async def register(app, sold, n=0) -> dict:
    return msgspec.json.decode(await app[REDIS].hget(
        app[KEYS].event(sold.event_id, "tickets"), sold.tickets[n]))


async def test_a_hundred_concurrent_scans_of_one_ticket_admit_it_exactly_once(client, factory):
    sold = await sell_event(client, factory, tickets=1)
    answers = await asyncio.gather(*(scan(client, sold.provider, sold.event_id, sold.code(),
                                          gate=f"G{i % 4}") for i in range(100)))
    assert all(status == 200 for status, _ in answers)
    results = [a["result"] for _, a in answers]
    assert results.count("admitted") == 1, results
    # the other 99 are used (other gates) or harmless repeats (the admitting gate, within 30 s)
    admitted_gate = next(a["ticket"]["gate"] for _, a in answers if a["result"] == "admitted")
    for i, (_, a) in enumerate(answers):  # the rest: a harmless repeat at the admitting gate
        if a["result"] != "admitted":  # (within 30 s), "used" at the others
            assert a["result"] == ("repeat" if f"G{i % 4}" == admitted_gate else "used"), a
    counts = await (await client.get(f"/api/events/{sold.event_id}/gate/counts",
                                     headers=sold.provider.h)).json()
    assert counts["checked_in"] == 1 and counts["gates"] == {admitted_gate: 1}
    assert counts["expected"] == 1
    app = client.server.app
    assert await app[REDIS].xlen(app[KEYS].event(sold.event_id, "checkins")) == 1


async def test_admitted_then_repeat_at_the_same_gate_then_used_elsewhere(client, factory):
    sold = await sell_event(client, factory, tickets=1)
    status, first = await scan(client, sold.provider, sold.event_id, sold.code())
    assert (status, first["result"], first["ok"]) == (200, "admitted", True)
    assert first["ticket"]["attendee"] == "Guest 0"
    assert first["ticket"]["package"] == sold.package["name"]
    _, again = await scan(client, sold.provider, sold.event_id, sold.code())
    assert (again["result"], again["ok"]) == ("repeat", True)
    _, other = await scan(client, sold.provider, sold.event_id, sold.code(), gate="South")
    assert (other["result"], other["ok"]) == ("used", False)
    assert other["ticket"]["gate"] == "North" and other["ticket"]["checked_in_at"] > 0
    assert "at gate North" in other["words"]
    # outside the 30 s window the same gate hears "used" too
    app = client.server.app
    entry = await register(app, sold)
    entry["at"] -= 31_000
    await app[REDIS].hset(app[KEYS].event(sold.event_id, "tickets"), sold.tickets[0],
                          msgspec.json.encode(entry))
    _, late = await scan(client, sold.provider, sold.event_id, sold.code())
    assert late["result"] == "used"


async def test_every_refusal_has_its_answer_and_changes_nothing(client, factory):
    sold = await sell_event(client, factory, tickets=4)
    other = await sell_event(client, factory, tickets=1, provider=sold.provider,
                             order="ORD-2-GATE")
    app = client.server.app
    key = app[KEYS].event(sold.event_id, "tickets")
    entry = await register(app, sold, 1)
    await app[REDIS].hset(key, sold.tickets[1], msgspec.json.encode({**entry, "s": "refunded"}))
    await app[REDIS].hset(key, sold.tickets[2], msgspec.json.encode({**entry, "s": "cancelled"}))
    await app[REDIS].hset(key, sold.tickets[3], msgspec.json.encode({**entry, "g": 2}))
    good = sold.code(0)
    head, _, signature = good.rpartition(".")
    tampered = good.replace(sold.tickets[0].split("-")[2], "ZZZZZZZZZZZZ")
    flipped = f"{head}.{('B' if signature[0] == 'A' else 'A')}{signature[1:]}"
    stranger = payload(sold.tickets[0], keyring=Keyring.generate("GT1"))  # same kid, other key
    unknown = payload(f"TKT-{sold.event_id}-0000AAAA0000")
    before = await app[REDIS].hgetall(key)
    cases = {
        "forged": [tampered, flipped, stranger, payload(sold.tickets[0], keyring=Keyring.generate("ZZ9"))],
        "refunded": [sold.code(1)], "cancelled": [sold.code(2)],
        "revoked": [sold.code(3, generation=1)],  # transferred: the register is at generation 2
        "wrong_event": [other.code(0), f"TKT-{other.event_id}-{other.tickets[0].split('-')[2]}"],
        "unknown": [unknown, f"TKT-{sold.event_id}-0000AAAA0000"],
    }
    for expected, codes in cases.items():
        for code in codes:
            status, answer = await scan(client, sold.provider, sold.event_id, code)
            assert (status, answer["result"], answer["ok"]) == (200, expected, False), (code, answer)
    assert await app[REDIS].hgetall(key) == before
    assert not await app[REDIS].exists(app[KEYS].event(sold.event_id, "checkins"))
    # the transferred ticket's new code comes in; a typed number too (any generation)
    _, new = await scan(client, sold.provider, sold.event_id, sold.code(3, generation=2))
    assert new["result"] == "admitted"


async def test_a_typed_ticket_number_checks_in(client, factory):
    sold = await sell_event(client, factory, tickets=1)
    _, answer = await scan(client, sold.provider, sold.event_id, f"  {sold.tickets[0].lower()}\n")
    assert answer["result"] == "admitted"


async def test_garbage_empty_and_oversized_input_is_a_clear_4xx(client, factory):
    sold = await sell_event(client, factory, tickets=1)
    h = sold.provider.h
    app = client.server.app
    key = app[KEYS].event(sold.event_id, "tickets")
    before = await app[REDIS].hgetall(key)
    for body, status in [
            ({"event_id": sold.event_id, "code": "", "gate": "N"}, 422),
            ({"event_id": sold.event_id, "code": "hello world", "gate": "N"}, 422),
            ({"event_id": sold.event_id, "code": "KW1.GT1.1.X.1.1.AAAA", "gate": "N"}, 422),
            ({"event_id": sold.event_id, "code": "TKT-1-a b", "gate": "N"}, 422),
            ({"event_id": sold.event_id, "code": "x" * 201, "gate": "N"}, 422),
            ({"event_id": sold.event_id, "code": sold.code(), "gate": ""}, 422),
            ({"event_id": sold.event_id, "code": sold.code(), "gate": "a\nb"}, 422),
            ({"event_id": sold.event_id, "code": sold.code(), "gate": "g" * 41}, 422),
            ({"event_id": sold.event_id, "code": sold.code()}, 422),
            ({"event_id": 0, "code": sold.code(), "gate": "N"}, 422),
            ({"event_id": sold.event_id, "code": sold.code(), "gate": "N", "x": 1}, 422)]:
        resp = await client.post(SCAN, json=body, headers=h)
        assert resp.status == status, (body, await resp.text())
    assert (await client.post(SCAN, data=b"{not json", headers={
        **h, "Content-Type": "application/json"})).status == 400
    assert (await client.post(SCAN, data=b"", headers={
        **h, "Content-Type": "application/json"})).status == 400
    assert (await client.post(SCAN, data=io.BytesIO(b"x" * (2 * 1024 * 1024)), headers={
        **h, "Content-Type": "application/json"})).status == 413
    assert (await client.post(SCAN, json={"event_id": sold.event_id, "code": sold.code(),
                                          "gate": "N"})).status == 401
    assert await app[REDIS].hgetall(key) == before


async def test_a_gate_named_in_any_script_up_to_40_characters_works(client, factory):
    """The gate name's limit is 40 characters, not 40 bytes: Cyrillic, Greek or CJK gate names
    scan, sync and undo like Latin ones."""
    sold = await sell_event(client, factory, tickets=3)
    h = sold.provider.h
    gate = "Главный вход, северная сторона, ворота 1"  # 40 characters, 72 bytes in UTF-8
    assert len(gate) == 40
    status, answer = await scan(client, sold.provider, sold.event_id, sold.code(0), gate=gate)
    assert status == 200 and answer["result"] == "admitted" and answer["ticket"]["gate"] == gate
    _, again = await scan(client, sold.provider, sold.event_id, sold.code(0), gate=gate)
    assert again["result"] == "repeat"
    manual = await client.post(f"/api/events/{sold.event_id}/gate/checkin", headers=h, json={
        "ticket_number": sold.tickets[1], "gate": "東口" * 20})
    assert manual.status == 200 and (await manual.json())["result"] == "admitted"
    synced = await client.post(f"/api/events/{sold.event_id}/gate/sync", headers=h, json={
        "gate": "Πύλη Β" * 6 + "ΠΥΛΗ", "items": [{"id": "a1", "code": sold.code(2), "at": 1}]})
    assert synced.status == 200 and (await synced.json())["results"][0]["result"] == "admitted"
    undo = await client.post(f"/api/events/{sold.event_id}/gate/undo", headers=h,
                             json={"ticket_number": sold.tickets[0]})
    assert undo.status == 200 and (await undo.json())["result"] == "undone"
    counts = await (await client.get(f"/api/events/{sold.event_id}/gate/counts", headers=h)).json()
    assert counts["checked_in"] == 2 and gate not in counts["gates"]


async def test_a_check_in_reaches_postgres_once_even_when_the_writer_dies(client, factory, db):
    sold = await sell_event(client, factory, tickets=2)
    app = client.server.app
    _, answer = await scan(client, sold.provider, sold.event_id, sold.code(0), gate="East")
    assert answer["result"] == "admitted"
    # a worker reads the entry and dies before writing it: it stays pending in its name
    stream = app[KEYS].event(sold.event_id, "checkins")
    dead = writer(app, consumer="dead")
    await dead._group(sold.event_id)
    taken = await app[REDIS].xreadgroup(GROUP, "dead", {stream: ">"}, count=10)
    assert len(taken[0][1]) == 1
    # another worker claims it once idle, and writes it
    alive = writer(app, consumer="alive", claim_idle_ms=0)
    assert await alive.round() == 1
    row = await db.fetchrow("SELECT status, checked_in_at, checked_in_by FROM tickets "
                            "WHERE ticket_number = $1", sold.tickets[0])
    assert row["status"] == "used" and row["checked_in_at"] is not None
    assert row["checked_in_by"] == f"u:{sold.provider.user['id']} at East"
    # the dead worker's entry delivered again changes nothing: one log row
    await dead.handle(sold.event_id, taken[0][1])
    assert await db.fetchval("SELECT count(*) FROM checkins WHERE ticket_number = $1",
                             sold.tickets[0]) == 1
    assert (await app[REDIS].xpending(stream, GROUP))["pending"] == 0
    other = await db.fetchrow("SELECT status, checked_in_at FROM tickets WHERE ticket_number = $1",
                              sold.tickets[1])
    assert (other["status"], other["checked_in_at"]) == ("valid", None)


async def test_undo_by_the_provider_is_logged_and_reaches_postgres(client, factory, db):
    sold = await sell_event(client, factory, tickets=1)
    app = client.server.app
    await scan(client, sold.provider, sold.event_id, sold.code())
    resp = await client.post(f"/api/events/{sold.event_id}/gate/undo",
                             json={"ticket_number": sold.tickets[0]}, headers=sold.provider.h)
    assert resp.status == 200 and (await resp.json())["result"] == "undone"
    assert (await register(app, sold))["s"] == "valid"
    counts = await (await client.get(f"/api/events/{sold.event_id}/gate/counts",
                                     headers=sold.provider.h)).json()
    assert counts["checked_in"] == 0 and counts["gates"] == {}
    await writer(app).round()
    log = await db.fetch("SELECT action, by_who FROM checkins WHERE ticket_number = $1 ORDER BY id",
                         sold.tickets[0])
    who = f"u:{sold.provider.user['id']}"
    assert [(r["action"], r["by_who"]) for r in log] == [("in", who), ("undo", who)]
    row = await db.fetchrow("SELECT status, checked_in_at FROM tickets WHERE ticket_number = $1",
                            sold.tickets[0])
    assert (row["status"], row["checked_in_at"]) == ("valid", None)
    _, again = await scan(client, sold.provider, sold.event_id, sold.code())
    assert again["result"] == "admitted"
    second = await client.post(f"/api/events/{sold.event_id}/gate/undo",
                               json={"ticket_number": sold.tickets[0]}, headers=sold.provider.h)
    assert (await second.json())["result"] == "undone"
    third = await client.post(f"/api/events/{sold.event_id}/gate/undo",
                              json={"ticket_number": sold.tickets[0]}, headers=sold.provider.h)
    assert (await third.json())["result"] == "not_used"


async def test_an_undo_written_before_its_check_in_leaves_the_ticket_valid(client, factory, db):
    """Two writers (or one restarted, claiming a dead one's entries later): the check-in entry
    reaches Postgres after the undo that followed it. Postgres must end as the gate did."""
    sold = await sell_event(client, factory, tickets=1)
    app = client.server.app
    _, answer = await scan(client, sold.provider, sold.event_id, sold.code(), gate="East")
    assert answer["result"] == "admitted"
    stream = app[KEYS].event(sold.event_id, "checkins")
    slow = writer(app, consumer="slow")
    await slow._group(sold.event_id)
    taken = await app[REDIS].xreadgroup(GROUP, "slow", {stream: ">"}, count=10)
    resp = await client.post(f"/api/events/{sold.event_id}/gate/undo",
                             json={"ticket_number": sold.tickets[0]}, headers=sold.provider.h)
    assert (await resp.json())["result"] == "undone"
    assert await writer(app, consumer="fast").round() == 1  # the undo, written first
    await slow.handle(sold.event_id, taken[0][1])  # then the check-in it took back
    assert (await register(app, sold))["s"] == "valid"
    row = await db.fetchrow("SELECT status, checked_in_at, checked_in_by FROM tickets "
                            "WHERE ticket_number = $1", sold.tickets[0])
    assert (row["status"], row["checked_in_at"], row["checked_in_by"]) == ("valid", None, None)
    # and a check-in after the undo, written before the undo's entry, stays
    _, again = await scan(client, sold.provider, sold.event_id, sold.code(), gate="West")
    assert again["result"] == "admitted"
    await slow.handle(sold.event_id, taken[0][1])  # the old entry once more: changes nothing
    await writer(app, consumer="fast").round()
    row = await db.fetchrow("SELECT status, checked_in_by FROM tickets WHERE ticket_number = $1",
                            sold.tickets[0])
    assert (row["status"], row["checked_in_by"]) == ("used", f"u:{sold.provider.user['id']} at West")


async def test_manual_search_and_check_in(client, factory):
    sold = await sell_event(client, factory, tickets=3)
    h, base = sold.provider.h, f"/api/events/{sold.event_id}/gate"
    by_name = await (await client.get(f"{base}/search", params={"q": "guest 1"}, headers=h)).json()
    assert [t["ticket_number"] for t in by_name] == [sold.tickets[1]]
    by_email = await (await client.get(f"{base}/search", params={"q": "G2@example.test"},
                                       headers=h)).json()
    assert [t["ticket_number"] for t in by_email] == [sold.tickets[2]]
    by_buyer = await (await client.get(f"{base}/search", params={"q": "mphatso@example.test"},
                                       headers=h)).json()
    assert len(by_buyer) == 3
    by_number = await (await client.get(f"{base}/search", params={"q": sold.tickets[0].lower()},
                                        headers=h)).json()
    assert [t["ticket_number"] for t in by_number] == [sold.tickets[0]]
    assert (await client.get(f"{base}/search", params={"q": "%"}, headers=h)).status == 422
    assert await (await client.get(f"{base}/search", params={"q": "%%"}, headers=h)).json() == []
    resp = await client.post(f"{base}/checkin", json={"ticket_number": sold.tickets[1],
                                                      "gate": "Desk"}, headers=h)
    assert (await resp.json())["result"] == "admitted"
    found = await (await client.get(f"{base}/search", params={"q": "guest 1"}, headers=h)).json()
    assert (found[0]["status"], found[0]["gate"]) == ("used", "Desk")


async def test_registering_tickets_again_after_a_check_in_never_resets_it(client, factory, db):
    """The issuer handling the order again, or a restore rebuilding the register from the
    record, before or after the check-in reached Postgres: the ticket stays used, with its
    check-in fields, and is not admitted again."""
    sold = await sell_event(client, factory, tickets=1)
    app = client.server.app
    _, answer = await scan(client, sold.provider, sold.event_id, sold.code())
    assert answer["result"] == "admitted"
    checked_in = await register(app, sold)
    assert (checked_in["s"], checked_in["gate"]) == ("used", "North")
    issuer = Issuer(app[DB], app[REDIS], app[KEYS])
    for write_back in (False, True):  # the record says valid, then used
        if write_back:
            await writer(app).round()
            assert await db.fetchval("SELECT status FROM tickets WHERE ticket_number = $1",
                                     sold.tickets[0]) == "used"
        await issuer(SimpleNamespace(event_id=sold.event_id, order_number="ORD-1-GATE"))
        async with db.acquire() as conn, conn.transaction():
            await gate.rebuild(app[REDIS], app[KEYS], sold.event_id, conn)
        assert await register(app, sold) == checked_in
        _, again = await scan(client, sold.provider, sold.event_id, sold.code(), gate="South")
        assert again["result"] == "used"


async def test_a_check_in_rebuilt_from_postgres_can_still_be_taken_back(client, factory, db):
    """Redis lost the register and it was rebuilt from the record: a used ticket there still
    says where it came in, and the provider can still undo it."""
    sold = await sell_event(client, factory, tickets=1)
    app, h = client.server.app, sold.provider.h
    await scan(client, sold.provider, sold.event_id, sold.code(), gate="East")
    assert await writer(app).round() == 1
    key = app[KEYS].event(sold.event_id, "tickets")
    await app[REDIS].delete(key)
    async with db.acquire() as conn, conn.transaction():
        assert await gate.rebuild(app[REDIS], app[KEYS], sold.event_id, conn) == 1
    _, used = await scan(client, sold.provider, sold.event_id, sold.code(), gate="West")
    assert used["result"] == "used" and used["ticket"]["gate"] == "East"
    resp = await client.post(f"/api/events/{sold.event_id}/gate/undo", headers=h,
                             json={"ticket_number": sold.tickets[0]})
    assert (await resp.json())["result"] == "undone"
    assert (await register(app, sold))["s"] == "valid"
    await writer(app).round()
    row = await db.fetchrow("SELECT status, checked_in_at FROM tickets WHERE ticket_number = $1",
                            sold.tickets[0])
    assert (row["status"], row["checked_in_at"]) == ("valid", None)


async def test_check_ins_after_redis_lost_the_stream_index_still_reach_postgres(client, factory,
                                                                               db):
    """Redis came back from a copy taken before the gate opened: the index of events with a
    check-in stream (kw:checkin:events) and the stream are gone, while the server processes
    remember having announced the event. Later check-ins must still reach Postgres."""
    sold = await sell_event(client, factory, tickets=2)
    app = client.server.app
    await scan(client, sold.provider, sold.event_id, sold.code(0))
    await app[REDIS].delete(app[KEYS].checkin_events(), app[KEYS].event(sold.event_id, "checkins"))
    _, answer = await scan(client, sold.provider, sold.event_id, sold.code(1))
    assert answer["result"] == "admitted"
    await writer(app).round()
    row = await db.fetchrow("SELECT status FROM tickets WHERE ticket_number = $1", sold.tickets[1])
    assert row["status"] == "used"


async def test_an_unreadable_check_in_entry_goes_to_the_dead_letters(client, factory, db):
    sold = await sell_event(client, factory, tickets=1)
    app = client.server.app
    await scan(client, sold.provider, sold.event_id, sold.code())
    stream = app[KEYS].event(sold.event_id, "checkins")
    await app[REDIS].xadd(stream, {"t": sold.tickets[0], "a": "explode", "gate": "X", "by": "u:1",
                                   "at": "1"})
    assert await writer(app).round() == 2
    (_, dead), = await app[REDIS].xrange(app[KEYS].dead_letters())
    assert dead[b"stream"] == b"checkins" and b"not a check-in entry" in dead[b"reason"]
    assert await db.fetchval("SELECT count(*) FROM checkins") == 1
    assert (await app[REDIS].xpending(stream, GROUP))["pending"] == 0
