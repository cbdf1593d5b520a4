"""Tickets by email, on real Redis, Postgres and a real SMTP server (aiosmtpd): a purchase ends
with an email whose PDF holds one page per ticket, each QR code verifying; every message is sent
once whatever repeats, races or dies; temporary SMTP failures are retried, permanent ones
recorded; reminders and refund-due notices once; the development mailbox shows what it got."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from engine.keys import Keys
from engine.settings import Secret
from engine.signing import unsign
from engine.tickets import Keyring, verify_ticket
from engine.tickets.store import TicketRenderer
from fulfillment.mail.delivery import GROUP
from fulfillment.mail.devbox import DevMailbox
from fulfillment.mail.log import Claim
from fulfillment.mail.message import Letter
from fulfillment.mail.worker import MailWorker, mail_worker
from storefront.app import create_app
from storefront.appkeys import DB, INVENTORY, KEYS, ORDERS, REDIS
from tests.inventory_helpers import lapse
from tests.sandbox_helpers import eventually
from tests.smtp_helpers import Inbox, smtp_server
from tests.test_fulfillment import BILLING, _desk, _event, _sell
from tests.test_purchase_flow import BILLING as BUYER
from tests.test_purchase_flow import _event as _shop_event
from tests.test_purchase_flow import guest, shop
from tests.test_ticket_pdf import pages_of

KEYRING = Keyring.generate("M1")


@pytest.fixture(scope="module")
async def renderer():
    async with TicketRenderer(workers=1) as pool:
        yield pool


@pytest.fixture
def inbox():
    with smtp_server() as found:
        yield found


@pytest.fixture
def mail_settings(settings, inbox, tmp_path):
    return msgspec.structs.replace(
        settings, smtp_host="127.0.0.1", smtp_port=inbox.port, smtp_security="none",
        mail_retry_seconds=0.05, mail_max_attempts=4, tickets_dir=str(tmp_path / "tickets"),
        ticket_signing_keys=Secret(KEYRING.to_text()))


def worker(app, mail_settings, renderer, name="w1", **kw) -> MailWorker:
    return mail_worker(mail_settings, app[DB], app[REDIS], app[KEYS], consumer=name,
                       renderer=renderer, **kw)


async def fulfil(app) -> None:
    """The fulfillment consumer writes what was sold and queues its delivery."""
    await _desk(app).round()


async def until_delivered(mail: MailWorker, inbox: Inbox, count: int, timeout: float = 20):
    async def done() -> bool:
        await mail.deliveries.round()
        return inbox.count() >= count
    await eventually(done, timeout)


async def pending(app) -> int:
    return (await app[REDIS].xpending(app[KEYS].deliveries(), GROUP))["pending"]


async def log_rows(db, kind=None):
    return await db.fetch("SELECT * FROM email_log" + (" WHERE kind = $1" if kind else "")
                          + " ORDER BY id", *([kind] if kind else []))


# --- the whole way -----------------------------------------------------------------------------
async def test_a_purchase_ends_with_tickets_in_the_inbox_whose_codes_verify(
        settings, inbox, mail_settings, renderer):
    async with shop(settings) as store, guest(store) as buyer:
        event, pkg = await _shop_event(store)
        order = await buyer.order_until_paying(event, pkg, quantity=3)
        await buyer.pay_on_hosted_page(order)
        await buyer.until(order["order_number"], ("paid",))
        app = store.app
        await app[DB].execute("UPDATE events SET venue = 'Chichiri Stadium', address = "
                              "'Masauko Chipembere Highway', city = 'Blantyre'")
        await fulfil(app)
        mail = worker(app, mail_settings, renderer)
        await until_delivered(mail, inbox, 2)
        db = app[DB]
        tickets = await db.fetch(
            "SELECT t.ticket_number, t.seat_id, t.generation FROM tickets t JOIN orders o "
            "ON o.id = t.order_id WHERE o.order_number = $1 ORDER BY t.id", order["order_number"])
        assert len(tickets) == 3
        provider_email = await db.fetchval(
            "SELECT p.contact_email FROM service_providers p JOIN events e "
            "ON e.provider_id = p.id WHERE e.id = $1", event["id"])
        rows = await log_rows(db)
        assert await pending(app) == 0
    (mine,) = inbox.to(BUYER["email"])
    (notice,) = inbox.to(provider_email)
    assert mine.subject == f"Your tickets for {event['title']}"
    assert str(mine.message["From"]) == "Kwika Events <tickets@kwika.events>"
    files = mine.attachments()
    assert set(files) == {f"tickets-{order['order_number']}.pdf", "event.ics"}
    pages = await asyncio.to_thread(pages_of, files[f"tickets-{order['order_number']}.pdf"])
    assert len(pages) == 3  # one page per ticket
    for ticket, (_text, codes) in zip(tickets, pages, strict=True):
        claims = verify_ticket(KEYRING.public_keys, codes[0])
        assert (claims.ticket_number, claims.event_id, claims.generation) == (
            ticket["ticket_number"], event["id"], ticket["generation"])
    assert b"BEGIN:VEVENT" in files["event.ics"] and f"UID:event-{event['id']}@kwika".encode() \
        in files["event.ics"]
    # the guest's signed order link, and the way to the venue
    text, html = mine.text(), mine.html()
    link = re.search(r"https?://\S+/orders/\S+", text).group(0)
    token = parse_qs(urlsplit(link).query)["t"][0]
    assert unsign(settings.secret_key, "order", f"{order['order_number']}.{token}") \
        == order["order_number"]
    directions = ("https://www.google.com/maps/search/?api=1&query=Chichiri+Stadium%2C+Masauko+"
                  "Chipembere+Highway%2C+Blantyre")
    assert directions in text and directions.replace("&", "&amp;") in html
    assert all(t["ticket_number"] in text for t in tickets)
    assert "New sale: 3 tickets" in notice.subject and order["order_number"] in notice.text()
    assert "Total MWK 765.00" in notice.text()  # 3 x 250.00 + 3 x 5.00 fees
    assert {(r["kind"], r["status"], r["attempts"]) for r in rows} == {
        ("tickets", "sent", 1), ("provider_sale", "sent", 1)}
    assert all(r["message_id"] == str(m.message["Message-ID"])
               for r, m in zip(rows, (mine, notice), strict=True))


async def test_html_bodies_escape_what_buyers_typed(client, factory, db, inbox, mail_settings,
                                                    renderer):
    app = client.server.app
    event, pkg, _ = await _event(client, factory)
    await _sell(app[INVENTORY], event["id"], "u:1", {pkg["id"]: 1})
    await db.execute("UPDATE orders SET buyer_name = '<script>alert(1)</script>'")
    mail = worker(app, mail_settings, renderer)
    await fulfil(app)
    await db.execute("UPDATE orders SET buyer_name = '<script>alert(1)</script>'")
    await until_delivered(mail, inbox, 2)
    (mine,) = inbox.to(BILLING.email)
    assert "<script>" not in mine.html() and "&lt;script&gt;" in mine.html()
    assert "<script>alert(1)</script>" in mine.text()  # plain text is not markup


# --- exactly once ------------------------------------------------------------------------------
async def test_the_same_delivery_twice_and_two_workers_racing_send_once(
        client, factory, db, inbox, mail_settings, renderer):
    app = client.server.app
    event, pkg, _ = await _event(client, factory)
    await _sell(app[INVENTORY], event["id"], "u:1", {pkg["id"]: 2})
    await fulfil(app)
    stream = app[KEYS].deliveries()
    (_, fields), = await app[REDIS].xrange(stream)
    for _ in range(3):  # the same entry queued again (a fulfillment entry redelivered, say)
        await app[REDIS].xadd(stream, fields)
    first, second = (worker(app, mail_settings, renderer, name) for name in ("w1", "w2"))
    await asyncio.gather(first.deliveries.round(), second.deliveries.round(),
                         first.desk.sold(fields[b"order"].decode()))

    async def settled() -> bool:  # an entry that found the message in the other's hands looks again
        await asyncio.gather(first.deliveries.round(), second.deliveries.round())
        return await pending(app) == 0
    await eventually(settled, 10)
    assert await app[REDIS].xlen(stream) <= 1
    assert len(inbox.to(BILLING.email)) == 1 and inbox.count() == 2
    assert [r["attempts"] for r in await log_rows(db)] == [1, 1]


async def test_a_worker_killed_between_sending_and_acknowledging_sends_nothing_again(
        client, factory, db, inbox, mail_settings, renderer):
    app = client.server.app
    event, pkg, _ = await _event(client, factory)
    await _sell(app[INVENTORY], event["id"], "u:1", {pkg["id"]: 1})
    await fulfil(app)
    doomed = worker(app, mail_settings, renderer, "doomed")
    await doomed.deliveries._group()
    (_, [(_entry, fields)]), = await app[REDIS].xreadgroup(
        GROUP, "doomed", {app[KEYS].deliveries(): ">"}, count=10)
    outcomes = await doomed.desk.sold(fields[b"order"].decode())  # sent and logged...
    assert [o.status for o in outcomes] == ["sent", "sent"] and await pending(app) == 1
    # ...and the worker died before XACK. Another claims the entry once it is idle.
    heir = worker(app, mail_settings, renderer, "heir", claim_idle_ms=0)
    assert await heir.deliveries.round() == 1
    assert await pending(app) == 0 and inbox.count() == 2


async def test_a_claim_left_sending_by_a_dead_worker_is_sent_again_with_its_message_id(
        client, factory, db, inbox, mail_settings, renderer):
    """The at-least-once boundary: a worker that died after claiming (the SMTP server may or may
    not have accepted) leaves the row `sending`; after its lease the message goes again, with the
    Message-ID it was claimed with, so a mailbox that saw the first copy can tell."""
    app = client.server.app
    event, pkg, _ = await _event(client, factory)
    await _sell(app[INVENTORY], event["id"], "u:1", {pkg["id"]: 1})
    await fulfil(app)
    number = await db.fetchval("SELECT order_number FROM orders")
    mail = worker(app, mail_settings, renderer)
    log = mail.desk.postman.log
    claimed = await log.claim("tickets", number, to=BILLING.email, subject="s",
                              order_number=number, message_id="<dead@kwika.events>")
    assert isinstance(claimed, Claim)
    assert [o.status for o in await mail.desk.sold(number)] == ["waiting", "sent"]
    assert inbox.count() == 1  # the provider's notice; the tickets are in the dead one's hands
    await db.execute("UPDATE email_log SET lease_until = now() - interval '1 second' "
                     "WHERE kind = 'tickets'")
    assert [o.status for o in await mail.desk.sold(number)] == ["sent", "sent"]
    (mine,) = inbox.to(BILLING.email)
    assert str(mine.message["Message-ID"]) == "<dead@kwika.events>"
    row = (await log_rows(db, "tickets"))[0]
    assert (row["status"], row["attempts"]) == ("sent", 2)


async def test_a_temporary_smtp_failure_is_retried_then_sent(
        client, factory, db, inbox, mail_settings, renderer):
    app = client.server.app
    event, pkg, _ = await _event(client, factory)
    await _sell(app[INVENTORY], event["id"], "u:1", {pkg["id"]: 1})
    await fulfil(app)
    inbox.replies = ["451 4.3.0 Try again later", "451 4.3.0 Try again later"]
    mail = worker(app, mail_settings, renderer)
    await until_delivered(mail, inbox, 2)
    assert inbox.refused == 2 and len(inbox.to(BILLING.email)) == 1
    rows = {r["kind"]: r for r in await log_rows(db)}
    assert sum(r["attempts"] for r in rows.values()) == 4  # two 451s, then both sent
    assert {r["status"] for r in rows.values()} == {"sent"}
    assert await pending(app) == 0


async def test_a_permanent_smtp_failure_is_recorded_and_not_retried(
        client, factory, db, inbox, mail_settings, renderer):
    app = client.server.app
    event, pkg, _ = await _event(client, factory)
    await _sell(app[INVENTORY], event["id"], "u:1", {pkg["id"]: 1})
    await fulfil(app)
    inbox.replies = ["550 5.1.1 No such mailbox"]
    mail = worker(app, mail_settings, renderer)
    await until_delivered(mail, inbox, 1)  # the other message goes
    for _ in range(5):
        await mail.deliveries.round()
    assert inbox.refused == 1 and inbox.count() == 1 and await pending(app) == 0
    failed = await db.fetchrow("SELECT * FROM email_log WHERE status = 'failed'")
    assert failed["attempts"] == 1 and "550" in failed["error"]


async def test_temporary_failures_give_up_after_the_last_try(
        client, factory, db, inbox, mail_settings, renderer):
    app = client.server.app
    event, pkg, _ = await _event(client, factory)
    await _sell(app[INVENTORY], event["id"], "u:1", {pkg["id"]: 1})
    await fulfil(app)
    inbox.replies = ["421 4.7.0 Busy"] * 20
    mail = worker(app, mail_settings, renderer)

    async def settled() -> bool:
        await mail.deliveries.round()
        return await pending(app) == 0
    await eventually(settled, 20)
    rows = await log_rows(db)
    assert {(r["status"], r["attempts"]) for r in rows} == {("failed", 4)}
    assert all("gave up after 4 tries" in r["error"] for r in rows)


async def test_malformed_deliveries_go_to_the_dead_letters(client, inbox, mail_settings, renderer):
    app = client.server.app
    stream, rds = app[KEYS].deliveries(), app[REDIS]
    ids = [await rds.xadd(stream, {"event": "1"}),
           await rds.xadd(stream, {"order": "ORD-NOPE", "kind": "teleport"}),
           await rds.xadd(stream, {"order": "ORD-NOPE"})]
    mail = worker(app, mail_settings, renderer)
    assert await mail.deliveries.round() == 3
    # entries are handled side by side: their dead letters arrive in any order, each names its entry
    letters = {f[b"entry"]: f[b"reason"].decode() for _, f in await rds.xrange(app[KEYS].dead_letters())}
    reasons = [letters[i] for i in ids]
    assert ["no order number" in reasons[0], "unknown kind" in reasons[1],
            "no order ORD-NOPE" in reasons[2]] == [True, True, True]
    assert await pending(app) == 0 and inbox.count() == 0


async def test_resend_and_transfer_entries(client, factory, db, inbox, mail_settings, renderer):
    app = client.server.app
    event, pkg, _ = await _event(client, factory)
    await _sell(app[INVENTORY], event["id"], "u:1", {pkg["id"]: 2})
    await fulfil(app)
    mail = worker(app, mail_settings, renderer)
    await until_delivered(mail, inbox, 2)
    number = await db.fetchval("SELECT order_number FROM orders")
    ticket = await db.fetchrow("SELECT * FROM tickets ORDER BY id LIMIT 1")
    await db.execute("UPDATE tickets SET attendee_name = 'Zoë New', attendee_email = "
                     "'new@example.test', generation = 2 WHERE id = $1", ticket["id"])
    rds, stream = app[REDIS], app[KEYS].deliveries()
    for _ in range(2):  # each queued twice: one email each
        await rds.xadd(stream, {"order": number, "event": str(event["id"]), "kind": "resend",
                                "request": "r-1"})
        await rds.xadd(stream, {"order": number, "event": str(event["id"]), "kind": "transfer",
                                "ticket": ticket["ticket_number"]})
    await until_delivered(mail, inbox, 4)

    async def settled() -> bool:  # a copy handled beside its twin looks again a moment later
        await mail.deliveries.round()
        return await pending(app) == 0
    await eventually(settled, 10)
    assert inbox.count() == 4
    again = [m for m in inbox.to(BILLING.email) if "sent again" in m.subject]
    assert len(again) == 1
    (theirs,) = inbox.to("new@example.test")
    (pdf,) = [v for k, v in theirs.attachments().items() if k.endswith(".pdf")]
    ((_text, codes),) = await asyncio.to_thread(pages_of, pdf)
    claims = verify_ticket(KEYRING.public_keys, codes[0])
    assert (claims.ticket_number, claims.generation) == (ticket["ticket_number"], 2)


# --- several entries at once ------------------------------------------------------------------
@dataclass
class Meeting(Inbox):
    """An SMTP server that holds each of the first `meet` messages until `meet` of them are in
    flight at once (then lets them all through): `met` says they were. One that is never met
    gives up after `patience` seconds with a 451; `release()` lets whoever waits go."""

    meet: int = 2
    patience: float = 15.0
    arrived: int = 0
    met: bool = False
    _here: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.arrived < self.meet:  # the server's own loop, in its thread: no lock needed
            if self._here is None:
                self._here, self._loop = asyncio.Event(), asyncio.get_running_loop()
            self.arrived += 1
            if self.arrived == self.meet:
                self.met = True
                self._here.set()
            try:
                await asyncio.wait_for(self._here.wait(), self.patience)
            except TimeoutError:
                return "451 4.3.0 nobody came"
        return await super().handle_DATA(server, session, envelope)

    def release(self) -> None:
        if self._loop is not None and self._here is not None:
            self._loop.call_soon_threadsafe(self._here.set)


@pytest.fixture
def meeting():
    with smtp_server(Meeting()) as found:
        yield found


def meeting_settings(mail_settings, meeting, **kw):
    return msgspec.structs.replace(mail_settings, smtp_port=meeting.port, **kw)


async def running(mail: MailWorker):
    """The deliveries loop as the worker runs it, and the event that stops it."""
    stop = asyncio.Event()
    return stop, asyncio.create_task(mail.deliveries.run(stop, idle=0.05))


async def test_several_orders_render_and_send_at_once(client, factory, db, meeting, mail_settings,
                                                     monkeypatch):
    app = client.server.app
    event, pkg, _ = await _event(client, factory)
    for n in range(2):
        await _sell(app[INVENTORY], event["id"], f"u:{n}", {pkg["id"]: 1}, number=f"ORD-1-C{n}")
    await fulfil(app)
    async with TicketRenderer(workers=2) as two:
        rendering, both, most = [0], asyncio.Event(), [0]
        render = two.render

        async def render_when_both_are_asked(doc):  # both orders' PDFs asked for at once...
            rendering[0] += 1
            most[0] = max(most[0], rendering[0])
            if rendering[0] == 2:
                both.set()
            try:
                await asyncio.wait_for(both.wait(), 15)
                return await render(doc)  # ...and drawn side by side, a process each
            finally:
                rendering[0] -= 1
        monkeypatch.setattr(two, "render", render_when_both_are_asked)
        mail = mail_worker(meeting_settings(mail_settings, meeting), app[DB], app[REDIS],
                           app[KEYS], consumer="w1", renderer=two)
        assert mail.deliveries.concurrency == 2  # the pool's size
        stop, loop = await running(mail)

        async def delivered() -> bool:
            return meeting.count() == 4 and await pending(app) == 0
        await eventually(delivered, 20)
        stop.set()
        await loop
    assert most[0] == 2 and meeting.met and meeting.refused == 0
    tickets = [m for m in meeting.received if m.rcpt_to == [BILLING.email]]
    assert sorted(a for m in tickets for a in m.attachments() if a.endswith(".pdf")) == [
        "tickets-ORD-1-C0.pdf", "tickets-ORD-1-C1.pdf"]


async def test_two_workers_each_with_several_at_once_still_send_each_message_once(
        client, factory, db, inbox, mail_settings, renderer):
    app = client.server.app
    event, pkg, _ = await _event(client, factory)
    numbers = [f"ORD-1-R{n}" for n in range(6)]
    for n, number in enumerate(numbers):
        await _sell(app[INVENTORY], event["id"], f"u:{n}", {pkg["id"]: 1}, number=number)
    await fulfil(app)
    stream = app[KEYS].deliveries()
    for _, fields in await app[REDIS].xrange(stream):  # every entry queued twice more
        for _ in range(2):
            await app[REDIS].xadd(stream, fields)
    racing = msgspec.structs.replace(mail_settings, mail_concurrency=4)
    workers = [mail_worker(racing, app[DB], app[REDIS], app[KEYS], consumer=name,
                           renderer=renderer) for name in ("w1", "w2")]
    assert [w.deliveries.concurrency for w in workers] == [4, 4]
    loops = [await running(w) for w in workers]

    async def settled() -> bool:
        return inbox.count() >= 12 and await pending(app) == 0
    await eventually(settled, 30)
    for stop, _ in loops:
        stop.set()
    await asyncio.gather(*(task for _, task in loops))
    sent = Counter(a for m in inbox.received for a in m.attachments() if a.endswith(".pdf"))
    assert sent == {f"tickets-{n}.pdf": 1 for n in numbers}
    assert sorted(m.subject.rsplit("(", 1)[-1].rstrip(")") for m in inbox.received
                  if m.subject.startswith("New sale")) == numbers
    assert inbox.count() == 12
    rows = await log_rows(db)
    assert len(rows) == 12 and {(r["status"], r["attempts"]) for r in rows} == {("sent", 1)}


async def test_stopping_cancels_what_is_still_in_flight_after_the_drain_and_it_stays_pending(
        client, factory, db, meeting, mail_settings, renderer):
    app = client.server.app
    event, pkg, _ = await _event(client, factory)
    await _sell(app[INVENTORY], event["id"], "u:1", {pkg["id"]: 1})
    await fulfil(app)
    # a cancelled aiosmtplib.send still says QUIT, and waits up to the SMTP timeout for the
    # answer (which the server stuck in DATA never gives): keep that short here
    mail = mail_worker(meeting_settings(mail_settings, meeting, smtp_timeout_seconds=3),
                       app[DB], app[REDIS], app[KEYS], consumer="w1", renderer=renderer)
    mail.deliveries.drain_seconds = 0.1  # the tickets email hangs at the server: never met
    stop, loop = await running(mail)
    try:
        async def at_the_server() -> bool:
            return meeting.arrived == 1
        await eventually(at_the_server, 20)
        stop.set()
        await asyncio.wait_for(loop, 10)  # cancelled after the drain, nothing left behind
        assert mail.deliveries._in_flight == {} and await pending(app) == 1
        assert (await log_rows(db, "tickets"))[0]["status"] == "sending"  # its lease will end
    finally:
        meeting.release()


# --- the scheduler -----------------------------------------------------------------------------
async def test_reminders_once_per_order_for_events_within_a_day(
        client, factory, db, inbox, mail_settings, renderer):
    app = client.server.app
    soon, soon_pkg, _ = await _event(client, factory)
    later, later_pkg, _ = await _event(client, factory)
    for n in range(3):
        await _sell(app[INVENTORY], soon["id"], f"u:{n}", {soon_pkg["id"]: 1}, number=f"ORD-1-S{n}")
    await _sell(app[INVENTORY], later["id"], "u:9", {later_pkg["id"]: 1}, number="ORD-1-L")
    await fulfil(app)
    await db.execute("UPDATE events SET starts_at = now() + interval '3 hours', "
                     "ends_at = now() + interval '6 hours' WHERE id = $1", soon["id"])
    await db.execute("UPDATE events SET starts_at = now() + interval '25 hours', "
                     "ends_at = now() + interval '28 hours' WHERE id = $1", later["id"])
    await db.execute("UPDATE orders SET sold_at = now() - interval '2 hours' "
                     "WHERE order_number <> 'ORD-1-S2'")  # S2 was bought a moment ago
    schedulers = [worker(app, mail_settings, renderer, f"s{n}").scheduler for n in range(3)]
    sent = await asyncio.gather(*[s.reminders() for s in schedulers])
    assert sum(sent) == 2
    assert sum(await asyncio.gather(*[s.reminders() for s in schedulers])) == 0
    reminders = await log_rows(db, "reminder")
    assert sorted(r["order_number"] for r in reminders) == ["ORD-1-S0", "ORD-1-S1"]
    assert all(r["status"] == "sent" and r["attempts"] == 1 for r in reminders)
    subjects = [r.subject for r in inbox.received]
    assert subjects.count(f"Tomorrow: {soon['title']}") == 2 and len(subjects) == 2


async def test_a_refund_due_payment_is_told_to_its_payer_once(settings, inbox, mail_settings,
                                                              renderer):
    async with shop(settings) as store:
        event, pkg = await _shop_event(store, capacity=1)
        async with guest(store) as buyer:
            order = await buyer.order_until_paying(event, pkg)
            draft = await store.app[ORDERS].get(order["order_number"])
            await lapse(store.app[INVENTORY], event["id"], draft.hold_id)
            async with guest(store) as rival:
                assert await rival.order_until_paying(event, pkg) is not None
            await buyer.pay_on_hosted_page(order)
            await buyer.until(order["order_number"], ("refund_due",))
        app = store.app
        schedulers = [worker(app, mail_settings, renderer, f"s{n}").scheduler for n in range(2)]
        assert sum(await asyncio.gather(*[s.refunds() for s in schedulers])) == 1
        await app[DB].execute("UPDATE payments SET state = 'refunded'")  # the worker refunds
        assert sum(await asyncio.gather(*[s.refunds() for s in schedulers])) == 0
    (notice,) = inbox.received
    assert notice.rcpt_to == [BUYER["email"]]
    assert order["order_number"] in notice.subject and "refunded" in notice.subject
    assert "could no longer be sold to you" in notice.text()


# --- the development mailbox -------------------------------------------------------------------
async def test_the_development_mailbox_lists_a_mail_and_serves_its_attachment(
        settings, mail_settings):
    box = DevMailbox(settings.redis_url, Keys(settings.redis_prefix))
    await asyncio.to_thread(box.start)
    try:
        dev = msgspec.structs.replace(mail_settings, smtp_port=box.port, dev_mailbox=True)
        async with TestClient(TestServer(create_app(dev))) as web:
            app = web.server.app
            from fulfillment.mail.log import EmailLog
            from fulfillment.mail.message import Attachment
            from fulfillment.mail.postman import Postman
            from fulfillment.mail.smtp import SmtpMailer
            postman = Postman(EmailLog(app[DB], worker="t"), SmtpMailer(dev), dev)
            letter = Letter(to="ada@example.test", subject="Tickets <b>bold</b>",
                            template="refund_due", context={
                                "name": "Ada", "order_number": "ORD-1-X", "amount": "MWK 1.00",
                                "event_title": "Gig", "why": "it came late"},
                            attachments=[Attachment("tickets.pdf", b"%PDF-1.4 fake",
                                                    "application/pdf")])
            assert (await postman.send_once("refund_due", "p-1", letter)).status == "sent"

            async def listed() -> bool:
                return "Tickets &lt;b&gt;bold&lt;/b&gt;" in await (await web.get("/dev/mailbox")).text()
            await eventually(listed, 10)
            page = await (await web.get("/dev/mailbox")).text()
            mail_id = re.search(r'href="/dev/mailbox/([0-9a-f]+)"', page).group(1)
            one = await web.get(f"/dev/mailbox/{mail_id}")
            body = await one.text()
            assert one.status == 200 and "ada@example.test" in body and "tickets.pdf" in body
            attached = await web.get(f"/dev/mailbox/{mail_id}/attachments/0")
            assert attached.status == 200 and await attached.read() == b"%PDF-1.4 fake"
            assert "attachment" in attached.headers["Content-Disposition"]
            html = await web.get(f"/dev/mailbox/{mail_id}/html")
            assert html.headers["Content-Security-Policy"].startswith("sandbox;")
            assert "Hello Ada" in await html.text()
            assert (await web.get(f"/dev/mailbox/{mail_id}/attachments/9")).status == 404
        async with TestClient(TestServer(create_app(mail_settings))) as web:  # not mounted
            assert (await web.get("/dev/mailbox")).status == 404
    finally:
        await asyncio.to_thread(box.stop)


def test_mail_settings_are_checked_and_the_password_never_shown():
    from engine.settings import SettingsError, load_settings
    with pytest.raises(SettingsError, match="KWIKA_SMTP_SECURITY"):
        load_settings({"KWIKA_SMTP_SECURITY": "ssl"})
    with pytest.raises(SettingsError, match="KWIKA_MAIL_FROM"):
        load_settings({"KWIKA_MAIL_FROM": "not an address"})
    with pytest.raises(SettingsError, match="KWIKA_DEV_MAILBOX"):
        load_settings({"KWIKA_DEV_MAILBOX": "true", "KWIKA_SMTP_HOST": "smtp.example.test"})
    loaded = load_settings({"KWIKA_SMTP_HOST": "smtp.example.test",
                            "KWIKA_SMTP_PASSWORD": "hunter2-secret", "KWIKA_SMTP_SECURITY": "tls"})
    assert loaded.smtp_port_or_default == 465 and "hunter2" not in repr(loaded)
    assert (loaded.mail_from, loaded.mail_from_name) == ("tickets@kwika.events", "Kwika Events")
    assert Keys("kw").dev_mail("1{ev:2}") == "kw:devmail:m:1%7Bev:2%7D"  # no hash tag from input

