"""My tickets over HTTP, on real Redis and Postgres, with orders written by the real fulfillment
consumer: only the caller's tickets, upcoming and past; the PDF for the buyer or the signed link
only; resends queued once per click and rate-limited; a transfer that revokes the old code at the
gate, issues a verifiable new one and queues its email, once per form; the refusals in words."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from engine.settings import Secret
from engine.signing import order_token
from engine.tickets import Keyring, TicketClaims, sign_ticket, verify_ticket
from engine.tickets.record import load_order, order_doc
from storefront.app import create_app
from storefront.appkeys import CATALOG, DB, INVENTORY, KEYS, REDIS, SETTINGS
from storefront.mytickets.tickets import HOLDERS
from tests.factories import PASSWORD, Factory
from tests.test_fulfillment import _desk, _event, _sell

KEYRING = Keyring.generate("MT1")


@pytest.fixture
async def client(settings, tmp_path):
    mine = msgspec.structs.replace(settings, ticket_signing_keys=Secret(KEYRING.to_text()),
                                   tickets_dir=str(tmp_path / "tickets"), ticket_render_workers=1)
    async with TestClient(TestServer(create_app(mine))) as test_client:
        yield test_client


@pytest.fixture
async def sold(client, factory: Factory):
    """Buyer `a` has 2 tickets of an upcoming event and 1 of a past one; buyer `b` 1 of the
    upcoming one. Written to Postgres by the fulfillment consumer."""
    app = client.server.app
    a, b = await factory.user(), await factory.user()
    soon, pkg, _ = await _event(client, factory)
    gone, old_pkg, _ = await _event(client, factory)
    await _sell(app[INVENTORY], soon["id"], f"u:{a.user['id']}", {pkg["id"]: 2}, number="ORD-1-A")
    await _sell(app[INVENTORY], gone["id"], f"u:{a.user['id']}", {old_pkg["id"]: 1},
                number="ORD-2-A")
    await _sell(app[INVENTORY], soon["id"], f"u:{b.user['id']}", {pkg["id"]: 1}, number="ORD-3-B")
    assert await _desk(app).round() == 3
    await app[DB].execute("UPDATE events SET starts_at = now() - interval '3 days', "
                          "ends_at = now() - interval '2 days' WHERE id = $1", gone["id"])
    numbers = {n: [r["ticket_number"] for r in await app[DB].fetch(
        "SELECT t.ticket_number FROM tickets t JOIN orders o ON o.id = t.order_id "
        "WHERE o.order_number = $1 ORDER BY t.id", n)] for n in ("ORD-1-A", "ORD-2-A", "ORD-3-B")}
    await app[REDIS].delete(app[KEYS].deliveries())  # the sale's own deliveries: not ours
    return {"a": a, "b": b, "soon": soon, "gone": gone, "tickets": numbers}


async def entries(app, kind: str) -> list[dict[str, str]]:
    found = [{k.decode(): v.decode() for k, v in fields.items()}
             for _, fields in await app[REDIS].xrange(app[KEYS].deliveries())]
    return [e for e in found if e.get("kind") == kind]


async def register(app, event_id: int, number: str) -> dict:
    return msgspec.json.decode(await app[REDIS].hget(app[KEYS].event(event_id, "tickets"), number))


# --- the list ----------------------------------------------------------------------------------
async def test_the_list_shows_only_the_callers_tickets_upcoming_and_past(client, sold):
    a, tickets = sold["a"], sold["tickets"]
    mine = await (await client.get("/api/my/tickets", headers=a.h)).json()
    (upcoming,), (past,) = mine["upcoming"], mine["past"]
    assert (upcoming["event_id"], past["event_id"]) == (sold["soon"]["id"], sold["gone"]["id"])
    assert [t["ticket_number"] for t in upcoming["tickets"]] == tickets["ORD-1-A"]
    for t in upcoming["tickets"]:
        claims = verify_ticket(KEYRING.public_keys, t["payload"])
        assert (claims.ticket_number, claims.generation, t["status"]) == (
            t["ticket_number"], 1, "valid")
    assert past["tickets"][0]["payload"] is None and not past["tickets"][0]["can_transfer"]

    page = await (await client.get("/my/tickets", headers=a.h)).text()
    assert all(n in page for n in tickets["ORD-1-A"]) and tickets["ORD-3-B"][0] not in page
    assert page.count('data-testid="ticket-qr"') == 2 and "<svg" in page
    assert tickets["ORD-2-A"][0] not in page
    past_page = await (await client.get("/my/tickets?show=past", headers=a.h)).text()
    assert tickets["ORD-2-A"][0] in past_page and 'data-testid="ticket-qr"' not in past_page
    anonymous = await client.get("/my/tickets", allow_redirects=False)
    where = urlsplit(anonymous.headers["Location"])
    assert (anonymous.status, where.path, parse_qs(where.query)) == (
        303, "/login", {"next": ["/my/tickets"]})
    assert (await client.get(f"/my/tickets/{tickets['ORD-3-B'][0]}", headers=a.h)).status == 404


# --- the PDF -----------------------------------------------------------------------------------
async def test_the_pdf_for_its_buyer_and_its_signed_link_only(client, sold):
    key = client.server.app[SETTINGS].secret_key
    url = "/orders/ORD-1-A/tickets.pdf"
    own = await client.get(url, headers=sold["a"].h)
    assert own.status == 200 and own.content_type == "application/pdf"
    assert own.headers["Content-Disposition"] == 'attachment; filename="tickets-ORD-1-A.pdf"'
    assert (await own.read()).startswith(b"%PDF")
    linked = await client.get(f"{url}?t={order_token(key, 'ORD-1-A')}")
    assert linked.status == 200 and (await linked.read()).startswith(b"%PDF")
    for refused in (client.get(url, headers=sold["b"].h),
                    client.get(f"{url}?t={order_token(key, 'ORD-3-B')}"),
                    client.get(f"{url}?t=not-a-token"),
                    client.get("/orders/ORD-9-NONE/tickets.pdf", headers=sold["a"].h)):
        assert (await refused).status == 404


# --- resend ------------------------------------------------------------------------------------
async def test_a_resend_queues_one_entry_per_click_and_is_rate_limited(client, sold):
    app, a = client.server.app, sold["a"]
    answer = await client.post("/orders/ORD-1-A/resend", data={"back": "/my/tickets"},
                               headers=a.h, allow_redirects=False)
    assert (answer.status, answer.headers["Location"]) == (303, "/my/tickets?sent=ORD-1-A")
    page = await (await client.get(answer.headers["Location"], headers=a.h)).text()
    assert "sending your tickets again to <strong>mphatso@example.test</strong>" in page
    assert len(await entries(app, "resend")) == 1
    for _ in range(2):
        api = await client.post("/api/orders/ORD-1-A/resend", headers=a.h)
        assert api.status == 202 and (await api.json())["sent_to"] == "mphatso@example.test"
    queued = await entries(app, "resend")
    assert len(queued) == 3 and len({e["request"] for e in queued}) == 3
    assert {(e["order"], e["event"]) for e in queued} == {("ORD-1-A", str(sold["soon"]["id"]))}
    refused = await client.post("/api/orders/ORD-1-A/resend", headers=a.h)
    assert refused.status == 429 and int(refused.headers["Retry-After"]) > 0
    assert "3 times in the last hour" in (await refused.json())["message"]
    page = await client.post("/orders/ORD-1-A/resend", data={}, headers=a.h)
    assert page.status == 429 and "3 times in the last hour" in await page.text()
    assert len(await entries(app, "resend")) == 3
    assert (await client.post("/api/orders/ORD-1-A/resend", headers=sold["b"].h)).status == 404


# --- transfer ----------------------------------------------------------------------------------
def _form(**kw: str) -> dict[str, str]:
    return {"name": "Chikondi Banda", "email": "chikondi@example.test", "confirm": "yes",
            "request": "form-token-0123456789", **kw}


async def test_a_transfer_revokes_the_old_code_and_issues_a_new_one_once(client, sold):
    app, a = client.server.app, sold["a"]
    number, event_id = sold["tickets"]["ORD-1-A"][0], sold["soon"]["id"]
    old = sign_ticket(KEYRING, TicketClaims(ticket_number=number, event_id=event_id))
    for _ in range(2):  # a double submit of one form
        answer = await client.post(f"/my/tickets/{number}/transfer", data=_form(), headers=a.h,
                                   allow_redirects=False)
        assert (answer.status, answer.headers["Location"]) == (
            303, f"/my/tickets/{number}?done=transferred")
    row = await app[DB].fetchrow("SELECT * FROM tickets WHERE ticket_number = $1", number)
    assert (row["generation"], row["attendee_name"], row["attendee_email"]) == (
        2, "Chikondi Banda", "chikondi@example.test")
    history = await app[DB].fetch("SELECT * FROM order_history WHERE change = 'transferred'")
    assert len(history) == 1 and history[0]["ticket_id"] == row["id"]
    assert msgspec.json.decode(history[0]["detail"])["from"]["name"] == "Guest 0"
    gate = await register(app, event_id, number)
    assert (gate["g"], gate["n"], gate["s"]) == (2, "Chikondi Banda", "valid")
    assert verify_ticket(KEYRING.public_keys, old).generation != gate["g"]  # refused at scan
    keys = (await (await client.get("/.well-known/kwika-ticket-keys.json")).json())["keys"]
    assert [k["kid"] for k in keys] == ["MT1"]
    order = await load_order(app[DB], "ORD-1-A")
    ticket = next(t for t in order.tickets if t.number == number)
    (doc,) = order_doc(KEYRING, order, [ticket]).tickets  # what the new holder is emailed
    assert verify_ticket(KEYRING.public_keys, doc.payload).generation == gate["g"]
    taken_back = await client.post(f"/api/tickets/{number}/transfer", headers=a.h, json={
        "name": "Someone Else", "email": "else@example.test"})  # it is theirs now
    assert taken_back.status == 409 and (await taken_back.json())["error"] == "ticket_transferred"
    # the double submit queued its email twice (a repeat queues again, in case the first
    # queueing failed): the mail worker sends one per ticket and generation
    assert await entries(app, "transfer") == [
        {"order": "ORD-1-A", "event": str(event_id), "kind": "transfer", "ticket": number}] * 2
    page = await (await client.get(f"/my/tickets/{number}?done=transferred", headers=a.h)).text()
    assert "gets this ticket by email at <strong>chikondi@example.test</strong>" in page
    assert 'data-testid="ticket-qr"' not in page  # the buyer no longer holds a code for it
    mine = await (await client.get("/api/my/tickets", headers=a.h)).json()
    given = next(t for t in mine["upcoming"][0]["tickets"] if t["ticket_number"] == number)
    assert (given["status"], given["payload"]) == ("transferred", None)
    # the API: idempotent by its key
    other = sold["tickets"]["ORD-1-A"][1]
    body = {"name": "Tiyamike Phiri", "email": "tiya@example.test"}
    first, again = [await (await client.post(
        f"/api/tickets/{other}/transfer", json=body,
        headers={**a.h, "Idempotency-Key": "api-key-0001"})).json() for _ in range(2)]
    assert (first["generation"], first["repeated"], again["repeated"]) == (2, False, True)
    assert len(await entries(app, "transfer")) == 4


async def test_a_transfer_to_an_invalid_email_is_refused_and_changes_nothing(client, sold):
    app, a = client.server.app, sold["a"]
    number = sold["tickets"]["ORD-1-A"][0]
    page = await client.post(f"/my/tickets/{number}/transfer", data=_form(email="not-an-email"),
                             headers=a.h)
    text = await page.text()
    assert page.status == 422
    assert re.search(r'data-testid="error-email">[^<]*email', text, re.IGNORECASE)
    api = await client.post(f"/api/tickets/{number}/transfer", headers=a.h,
                            json={"name": "X Y", "email": "nope"})
    assert api.status == 422 and "email" in (await api.json())["fields"]
    assert await app[DB].fetchval("SELECT generation FROM tickets WHERE ticket_number = $1",
                                  number) == 1
    assert await app[DB].fetchval("SELECT count(*) FROM order_history "
                                  "WHERE change = 'transferred'") == 0
    assert await entries(app, "transfer") == []


@pytest.mark.parametrize("why", ["used in the record", "used at the gate", "event over"])
async def test_a_ticket_that_cannot_change_hands_is_409_in_words(client, sold, why):
    app, a = client.server.app, sold["a"]
    number, event_id = sold["tickets"]["ORD-1-A"][0], sold["soon"]["id"]
    if why == "used in the record":
        await app[DB].execute("UPDATE tickets SET status = 'used' WHERE ticket_number = $1",
                              number)
    elif why == "used at the gate":  # a check-in the record has not heard of yet
        gate = {**await register(app, event_id, number), "s": "used"}
        await app[REDIS].hset(app[KEYS].event(event_id, "tickets"), number,
                              msgspec.json.encode(gate))
    else:
        number, event_id = sold["tickets"]["ORD-2-A"][0], sold["gone"]["id"]
    api = await client.post(f"/api/tickets/{number}/transfer", headers=a.h,
                            json={"name": "X Y", "email": "x@example.test"})
    body = await api.json()
    assert api.status == 409 and "cannot be given to anyone" in body["message"]
    if why != "event over":
        page = await client.post(f"/my/tickets/{number}/transfer", data=_form(), headers=a.h)
        assert page.status == 409 and "cannot be given to anyone" in await page.text()
    assert await app[DB].fetchval("SELECT generation FROM tickets WHERE ticket_number = $1",
                                  number) == 1
    assert (await register(app, event_id, number))["g"] == 1
    assert await entries(app, "transfer") == []


async def test_someone_elses_ticket_is_404_and_a_form_without_csrf_403(client, sold):
    a, b = sold["a"], sold["b"]
    number = sold["tickets"]["ORD-1-A"][0]
    api = await client.post(f"/api/tickets/{number}/transfer", headers=b.h,
                            json={"name": "X Y", "email": "x@example.test"})
    assert api.status == 404
    page = await client.post(f"/my/tickets/{number}/transfer", data=_form(), headers=b.h)
    assert page.status == 404
    login = await client.post("/api/auth/login", json={"email": a.user["email"],
                                                       "password": PASSWORD})
    assert login.status == 200
    no_csrf = await client.post(f"/my/tickets/{number}/transfer", data=_form())
    assert no_csrf.status == 403
    assert await client.server.app[DB].fetchval(
        "SELECT generation FROM tickets WHERE ticket_number = $1", number) == 1


# --- regressions from an outside review --------------------------------------------------------
async def test_two_concurrent_transfers_of_one_ticket_only_one_succeeds(client, sold, monkeypatch):
    """A ticket given away stays the new holder's: two transfers with different form tokens sent
    together, the second waiting on the row lock, must not both succeed (the second's check of
    "already transferred" must see the first's committed history row). The first transfer is
    paused inside its transaction until the second waits on the lock."""
    app, a = client.server.app, sold["a"]
    number = sold["tickets"]["ORD-1-A"][0]
    owner = f"u:{a.user['id']}"
    holders = app[HOLDERS]
    real, paused, go = holders._register, asyncio.Event(), asyncio.Event()

    async def pause_first(*args, **kwargs):
        if not paused.is_set():
            paused.set()
            await go.wait()
        return await real(*args, **kwargs)

    monkeypatch.setattr(holders, "_register", pause_first)
    first = asyncio.create_task(holders.transfer(
        number, owner=owner, name="First Holder", email="first@example.test",
        request="request-token-0001-xxxxxx"))
    await paused.wait()
    second = asyncio.create_task(holders.transfer(
        number, owner=owner, name="Second Holder", email="second@example.test",
        request="request-token-0002-xxxxxx"))
    for _ in range(100):  # until the second one waits on the ticket's row lock (a poll, bounded)
        if await app[DB].fetchval("SELECT count(*) FROM pg_stat_activity "
                                  "WHERE wait_event_type = 'Lock' AND datname = current_database() "
                                  "AND query LIKE '%FOR UPDATE OF t%'"):
            break
        await asyncio.sleep(0.02)
    go.set()
    results = await asyncio.gather(first, second, return_exceptions=True)
    ok = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    generation = await app[DB].fetchval(
        "SELECT generation FROM tickets WHERE ticket_number = $1", number)
    transfers = await app[DB].fetchval(
        "SELECT count(*) FROM order_history WHERE change = 'transferred'")
    assert (len(ok), generation, transfers) == (1, 2, 1), results
    assert getattr(refused[0], "code", None) == "ticket_transferred", refused
    gate = await register(app, sold["soon"]["id"], number)
    assert (gate["g"], gate["n"]) == (2, ok[0].name)
    assert len(await entries(app, "transfer")) == 1


async def test_a_transfer_retried_after_its_queueing_failed_still_mails_the_new_holder(
        client, sold, monkeypatch):
    """The transfer commits, then queueing its email fails: the buyer's retry with the same form
    token changes nothing but queues the email again (the mail worker sends one per ticket and
    generation, so a second entry is harmless)."""
    app, a = client.server.app, sold["a"]
    number = sold["tickets"]["ORD-1-A"][0]
    holders = app[HOLDERS]
    real = holders.client.xadd
    calls = {"n": 0}

    async def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("Redis went away for a moment")
        return await real(*args, **kwargs)

    monkeypatch.setattr(holders.client, "xadd", flaky)
    kwargs = {"owner": f"u:{a.user['id']}", "name": "Chikondi Banda",
              "email": "chikondi@example.test", "request": "form-token-0001-abcdef"}
    with pytest.raises(ConnectionError):
        await holders.transfer(number, **kwargs)
    again = await holders.transfer(number, **kwargs)  # the buyer submits the form again
    assert again.repeated and again.generation == 2
    assert await entries(app, "transfer") == [
        {"order": "ORD-1-A", "event": str(sold["soon"]["id"]), "kind": "transfer",
         "ticket": number}]


@pytest.mark.parametrize("name", ["Eve\r\nBcc: spy@evil.test", "Eve\nBanda", "Ann \u202eadnaB",
                                  "Ann\u2066Banda", "Tab\tName"])
async def test_a_transfer_name_on_more_than_one_line_or_with_bidi_overrides_is_422(
        client, sold, name):
    """Names are one line without bidirectional override or isolate characters (README, input
    rules): a line break would break the new holder's email header, an override shows the name
    reversed on the ticket and at the gate."""
    app, a = client.server.app, sold["a"]
    number = sold["tickets"]["ORD-1-A"][0]
    answer = await client.post(f"/api/tickets/{number}/transfer", headers=a.h,
                               json={"name": name, "email": "e@example.test"})
    assert answer.status == 422, await answer.text()
    assert "name" in (await answer.json())["fields"]
    page = await client.post(f"/my/tickets/{number}/transfer", data=_form(name=name), headers=a.h)
    assert page.status == 422 and 'data-testid="error-name"' in await page.text()
    assert await app[DB].fetchval(
        "SELECT generation FROM tickets WHERE ticket_number = $1", number) == 1
    assert await entries(app, "transfer") == []


@pytest.mark.parametrize("email", ["a b@example.test", "<a@example.test>", "a@example.test>",
                                   "a,b@example.test", "a;b@example.test", 'a"b@example.test',
                                   "a(b)@example.test", "a:b@example.test", "a[b]@example.test",
                                   "a\\b@example.test", "\u00e9@example.test",
                                   "a@example.test\nBcc: x@y.test"])
async def test_a_transfer_email_outside_plain_ascii_addresses_is_422(client, sold, email):
    app, a = client.server.app, sold["a"]
    number = sold["tickets"]["ORD-1-A"][0]
    answer = await client.post(f"/api/tickets/{number}/transfer", headers=a.h,
                               json={"name": "X Y", "email": email})
    assert answer.status == 422, await answer.text()
    assert "email" in (await answer.json())["fields"]
    assert await app[DB].fetchval(
        "SELECT generation FROM tickets WHERE ticket_number = $1", number) == 1


async def test_a_transfer_whose_commit_failed_is_levelled_by_the_record(client, sold, monkeypatch):
    """The gate register got the new generation, then the transaction failed: the register is put
    back at once, and should that fail too, the audit reports the disagreement and the levelling
    from the record (Postgres wins) puts the register back to the record's generation and name."""
    from engine.audit import audit
    from engine.onsale import reconcile_once
    from engine.sweeper import level_registers
    from engine.tickets.register import level_register

    app, a = client.server.app, sold["a"]
    number, event_id = sold["tickets"]["ORD-1-A"][0], sold["soon"]["id"]
    holders = app[HOLDERS]
    real = holders._register

    async def then_commit_fails(*args, **kwargs):
        await real(*args, **kwargs)
        raise ConnectionError("the connection to Postgres dropped at COMMIT")

    monkeypatch.setattr(holders, "_register", then_commit_fails)
    with pytest.raises(ConnectionError):
        await holders.transfer(number, owner=f"u:{a.user['id']}", name="Never Committed",
                               email="never@example.test", request="commit-fails-0001-abc")
    monkeypatch.setattr(holders, "_register", real)
    await reconcile_once(app[CATALOG], app[INVENTORY], everything=True)
    record = await app[DB].fetchval(
        "SELECT generation FROM tickets WHERE ticket_number = $1", number)
    gate = await register(app, event_id, number)
    assert (record, gate["g"], gate["n"]) == (1, 1, "Guest 0")
    assert await audit(app[INVENTORY], event_id, app[DB]) == []

    # the compensation failed too (the process died): the audit sees it, the levelling repairs it
    ahead = {**gate, "g": 2, "n": "Never Committed"}
    await app[REDIS].hset(app[KEYS].event(event_id, "tickets"), number, msgspec.json.encode(ahead))
    problems = await audit(app[INVENTORY], event_id, app[DB])
    assert any(number in p and "gate register" in p for p in problems), problems
    # the worker's periodic job levels every event on sale
    assert await level_registers(app[DB], app[INVENTORY]) == 1
    gate = await register(app, event_id, number)
    assert (gate["g"], gate["n"], gate["s"]) == (1, "Guest 0", "valid")
    assert await audit(app[INVENTORY], event_id, app[DB]) == []
    assert await level_register(app[DB], app[REDIS], app[KEYS], event_id) == 0
