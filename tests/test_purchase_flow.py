"""A purchase end to end over HTTP, on real Redis and Postgres, paid through the sandbox gateway
that the app serves (hosted page, signed webhooks back to /webhooks/sandbox): hold, checkout,
payment, webhook, sale. Webhooks arrive as a gateway sends them: many times at once, out of
order, forged, stale."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from engine.audit import audit
from engine.payments.sandbox import Event, EventData
from engine.payments.signing import HEADER, sign
from storefront.app import create_app
from storefront.appkeys import DB, GATEWAYS, INVENTORY, ORDERS, PAYMENTS
from tests.factories import Factory
from tests.inventory_helpers import lapse
from tests.sandbox_helpers import csrf

EV = "/api/provider/events"
BILLING = {"name": "Thoko Phiri", "email": "thoko@example.test", "phone": "+265 888 123 456"}
CARD_OK, CARD_DECLINED = "4242 4242 4242 4242", "4000 0000 0000 0002"


@dataclass
class Shop:
    client: TestClient
    factory: Factory
    secrets: tuple[str, ...]

    @property
    def app(self):
        return self.client.server.app

    def url(self, path: str) -> str:
        return str(self.client.make_url(path))


@contextlib.asynccontextmanager
async def shop(settings, **overrides) -> AsyncIterator[Shop]:
    """The storefront with the sandbox on, its webhooks coming back to this very app."""
    fast = {"sandbox": True, "sandbox_settle_ms": 200, "sandbox_webhook_backoff_ms": 50,
            "sandbox_webhook_url": None, "holds_per_ip_per_minute": 1_000_000,
            "guests_per_ip_per_minute": 1_000_000}
    changed = msgspec.structs.replace(settings, **(fast | overrides))
    async with TestClient(TestServer(create_app(changed))) as client:
        yield Shop(client, Factory(client), tuple(changed.sandbox_webhook_secrets))


@pytest.fixture
async def store(settings) -> AsyncIterator[Shop]:
    async with shop(settings) as found:
        yield found


async def _event(s: Shop, capacity=10, price=25_000, service_fee=500):
    provider = await s.factory.user("provider")
    event = await s.factory.event(provider, service_fee=service_fee, max_tickets_per_buyer=10)
    pkg = await s.factory.package(provider, event["id"], capacity=capacity, price=price)
    assert (await s.client.post(f"{EV}/{event['id']}/publish", headers=provider.h)).status == 200
    return event, pkg


class Buyer:
    """A browser-less buyer: its own cookies (a guest) or a token (an account)."""

    def __init__(self, s: Shop, session: aiohttp.ClientSession, headers: dict | None = None):
        self.s, self.session, self.headers = s, session, headers or {}

    async def call(self, method: str, path: str, **kw) -> tuple[int, dict]:
        async with self.session.request(method, self.s.url(path), headers=self.headers, **kw) as r:
            return r.status, (await r.json() if r.content_type == "application/json" else {})

    async def order_until_paying(self, event, pkg, quantity=1, method="card") -> dict | None:
        status, hold = await self.call("POST", f"/api/events/{event['id']}/holds",
                                       json={"items": [{"package_id": pkg["id"], "quantity": quantity}]})
        if status != 201:
            assert status == 409 and hold["error"] in ("sold_out", "not_enough"), hold
            return None
        status, order = await self.call("POST", f"/api/holds/{hold['id']}/checkout", json={
            "billing": BILLING, "accept_terms": True, "use_buyer_details": True})
        assert status == 200, order
        status, order = await self.call("POST", f"/api/orders/{order['order_number']}/payments",
                                        json={"method": method, "gateway": "sandbox"})
        assert status == 201, order
        return order

    async def pay_on_hosted_page(self, order: dict, card: str = CARD_OK) -> None:
        url = order["next_action"]["url"]
        path = urlsplit(url).path
        async with self.session.get(self.s.url(path)) as page:
            token = csrf(await page.text())
        async with self.session.post(self.s.url(f"{path}/card"), allow_redirects=False, data={
                "csrf_token": token, "card_number": card, "expiry": "12/34", "cvc": "123"}) as r:
            assert r.status == 303

    async def order(self, number: str) -> dict:
        status, body = await self.call("GET", f"/api/orders/{number}")
        assert status == 200, body
        return body

    async def until(self, number: str, statuses: tuple[str, ...], timeout: float = 20.0,
                    every: float = 0.05) -> dict:
        """Poll the order, as the payment status page does, until it reaches one of `statuses`."""
        async with asyncio.timeout(timeout):
            while (body := await self.order(number))["status"] not in statuses:
                await asyncio.sleep(every)
        return body


@contextlib.asynccontextmanager
async def guest(s: Shop) -> AsyncIterator[Buyer]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield Buyer(s, session)


def signed(s: Shop, event: Event, at: float | None = None) -> tuple[bytes, dict[str, str]]:
    body = msgspec.json.encode(event)
    return body, {HEADER: sign(s.secrets, body, int(at or time.time())),
                  "Content-Type": "application/json"}


def payment_event(order: dict, state: str, amount: int | None = None, event_id: str = "") -> Event:
    attempt = order["payments"][-1]
    return Event(id=event_id or f"evt_{attempt['reference']}_{state}", type=f"payment.{state}",
                 created=int(time.time()), data=EventData(
                     id=attempt["gateway_ref"], reference=attempt["reference"],
                     amount=order["total"] if amount is None else amount, currency=order["currency"],
                     status=state, method="card",
                     failure_reason="the card was declined" if state == "failed" else None))


async def test_a_guest_buys_through_the_hosted_page(store: Shop):
    event, pkg = await _event(store)
    async with guest(store) as buyer:
        order = await buyer.order_until_paying(event, pkg, quantity=2)
        assert order["next_action"]["kind"] == "redirect"
        assert (order["subtotal"], order["fees"], order["total"]) == (50_000, 1_000, 51_000)
        await buyer.pay_on_hosted_page(order)
        paid = await buyer.until(order["order_number"], ("paid",))
    assert [p["state"] for p in paid["payments"]] == ["succeeded"]
    row = await store.app[DB].fetchrow("SELECT state, amount, currency FROM payments")
    assert (row["state"], row["amount"], row["currency"]) == ("succeeded", 51_000, "MWK")
    stock = (await store.app[INVENTORY].availability(event["id"])).packages[pkg["id"]]
    assert (stock.sold, stock.held) == (2, 0)
    assert await audit(store.app[INVENTORY], event["id"], store.app[DB]) == []


async def test_a_declined_card_then_a_retry_that_succeeds(store: Shop):
    event, pkg = await _event(store)
    async with guest(store) as buyer:
        order = await buyer.order_until_paying(event, pkg)
        await buyer.pay_on_hosted_page(order, CARD_DECLINED)
        failed = await buyer.until(order["order_number"], ("payment_failed",))
        assert failed["payments"][0]["reason"] == "the card was declined"
        status, again = await buyer.call("POST", f"/api/orders/{order['order_number']}/payments",
                                         json={"method": "card"})
        assert status == 201 and again["payments"][-1]["state"] == "pending"
        await buyer.pay_on_hosted_page(again)
        paid = await buyer.until(order["order_number"], ("paid",))
    assert [p["state"] for p in paid["payments"]] == ["failed", "succeeded"]
    assert await store.app[DB].fetchval("SELECT count(*) FROM payments WHERE state = 'succeeded'") == 1


async def test_a_second_payment_while_one_is_under_way_is_refused(store: Shop):
    event, pkg = await _event(store)
    async with guest(store) as buyer:
        order = await buyer.order_until_paying(event, pkg)
        results = await asyncio.gather(*[buyer.call(
            "POST", f"/api/orders/{order['order_number']}/payments", json={"method": "card"})
            for _ in range(10)])
        assert {(s, b.get("error")) for s, b in results} == {(409, "payment_pending")}
        assert len((await buyer.order(order["order_number"]))["payments"]) == 1


async def test_mobile_money_keeps_the_tickets_while_the_buyer_approves(settings):
    """A hold with a minute left gets five more while the buyer types a PIN (once, bounded)."""
    async with shop(settings, hold_ttl_seconds=60) as store, guest(store) as buyer:
        event, pkg = await _event(store)
        status, hold = await buyer.call("POST", f"/api/events/{event['id']}/holds",
                                        json={"items": [{"package_id": pkg["id"], "quantity": 1}]})
        status, order = await buyer.call("POST", f"/api/holds/{hold['id']}/checkout", json={
            "billing": BILLING, "accept_terms": True, "use_buyer_details": True})
        status, paying = await buyer.call("POST", f"/api/orders/{order['order_number']}/payments",
                                          json={"method": "mobile_money", "network": "airtel"})
        assert status == 201 and paying["next_action"]["kind"] == "await_push"
        extended = datetime.fromisoformat(paying["hold_expires_at"])
        assert extended - datetime.fromisoformat(hold["expires_at"]) > timedelta(minutes=4)
        paid = await buyer.until(order["order_number"], ("paid",))
        assert paid["hold_expires_at"] is None


async def test_200_deliveries_of_one_signed_webhook_sell_once_and_log_once(store: Shop):
    event, pkg = await _event(store)
    async with guest(store) as buyer:
        order = await buyer.order_until_paying(event, pkg, quantity=2)
        body, headers = signed(store, payment_event(order, "succeeded", event_id="evt_same"))
        statuses = await asyncio.gather(*[store.client.post("/webhooks/sandbox", data=body,
                                                            headers=headers) for _ in range(200)])
        assert {r.status for r in statuses} == {200}
        outcomes = sorted([(await r.json())["outcome"] for r in statuses])
        assert outcomes.count("succeeded") == 1 and outcomes.count("duplicate") == 199
        assert (await buyer.order(order["order_number"]))["status"] == "paid"
    db = store.app[DB]
    assert await db.fetchval("SELECT count(*) FROM payment_events WHERE event_id = 'evt_same'") == 1
    assert await db.fetchval("SELECT count(*) FROM payments WHERE state = 'succeeded'") == 1
    assert (await store.app[INVENTORY].availability(event["id"])).packages[pkg["id"]].sold == 2


async def test_reordered_webhooks_leave_the_sale_confirmed(store: Shop):
    event, pkg = await _event(store)
    async with guest(store) as buyer:
        order = await buyer.order_until_paying(event, pkg)
        for state in ("succeeded", "failed", "pending"):
            body, headers = signed(store, payment_event(order, state))
            assert (await store.client.post("/webhooks/sandbox", data=body, headers=headers)).status == 200
        final = await buyer.order(order["order_number"])
    assert final["status"] == "paid" and final["payments"][-1]["state"] == "succeeded"
    assert await store.app[DB].fetchval("SELECT state FROM payments") == "succeeded"


@pytest.mark.parametrize("change, status", [
    ("forged", 401), ("stale", 401), ("future", 401), ("unsigned", 401), ("tampered", 401),
    ("malformed", 400), ("oversized", 413), ("unknown gateway", 404),
])
async def test_bad_webhooks_are_refused_and_change_nothing(store: Shop, change, status):
    event, pkg = await _event(store)
    async with guest(store) as buyer:
        order = await buyer.order_until_paying(event, pkg)
    good = payment_event(order, "succeeded")
    body, headers = signed(store, good)
    path = "/webhooks/sandbox"
    if change == "forged":
        headers[HEADER] = sign(("not-the-secret",), body, int(time.time()))
    elif change == "stale":
        body, headers = signed(store, good, at=time.time() - 3600)
    elif change == "future":
        body, headers = signed(store, good, at=time.time() + 3600)
    elif change == "unsigned":
        del headers[HEADER]
    elif change == "tampered":
        body = body.replace(str(order["total"]).encode(), str(order["total"] - 1).encode())
    elif change == "malformed":
        body, headers = b'{"id": "evt_1", "type": "payment.succeeded"}', signed(store, good)[1]
        headers[HEADER] = sign(store.secrets, body, int(time.time()))
    elif change == "oversized":
        body = b" " * (65 * 1024) + body
        headers[HEADER] = sign(store.secrets, body, int(time.time()))
    else:
        path = "/webhooks/nosuchgateway"
    resp = await store.client.post(path, data=body, headers=headers)
    assert resp.status == status, await resp.text()
    db = store.app[DB]  # (the sandbox's own payment.pending webhook may be recorded meanwhile)
    assert await db.fetchval("SELECT count(*) FROM payment_events WHERE event_id = $1", good.id) == 0
    assert await db.fetchval("SELECT count(*) FROM payments WHERE state = 'succeeded'") == 0
    assert (await store.app[INVENTORY].availability(event["id"])).packages[pkg["id"]].sold == 0


async def test_1000_buyers_for_500_tickets_end_in_exactly_500_paid_sales(store: Shop):
    """The issue's proof: hold, checkout, sandbox payment and its webhook for 1,000 concurrent
    guests; exactly 500 sales, each paid once, the books in balance."""
    event, pkg = await _event(store, capacity=500, service_fee=0)
    connector = aiohttp.TCPConnector(limit=0)

    async def one() -> str | None:
        async with aiohttp.ClientSession(connector=connector, connector_owner=False,
                                         cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            buyer = Buyer(store, session)
            order = await buyer.order_until_paying(event, pkg)
            if order is None:
                return None
            await buyer.pay_on_hosted_page(order)
            return order["order_number"]

    try:
        results = await asyncio.gather(*[one() for _ in range(1000)])
    finally:
        await connector.close()
    sold = [r for r in results if r is not None]
    assert len(sold) == 500 == len(set(sold))
    db = store.app[DB]
    async with asyncio.timeout(120):  # the webhooks come back (one query, not 500 pollers)
        while await db.fetchval("SELECT count(*) FROM payments WHERE state = 'succeeded'") < 500:
            await asyncio.sleep(0.2)
    assert await db.fetchval("SELECT count(*) FROM payments WHERE state = 'succeeded'") == 500
    assert await db.fetchval("SELECT count(DISTINCT order_number) FROM payments "
                             "WHERE state = 'succeeded'") == 500
    assert await db.fetchval("SELECT sum(amount) FROM payments WHERE state = 'succeeded'") == 500 * 25_000
    stock = (await store.app[INVENTORY].availability(event["id"])).packages[pkg["id"]]
    assert (stock.sold, stock.held, stock.available) == (500, 0, 0)
    drafts = [await store.app[ORDERS].get(n) for n in sold]
    assert {d.status for d in drafts} == {"paid"}
    assert await audit(store.app[INVENTORY], event["id"], db) == []


async def test_a_lost_webhook_is_made_good_by_asking_the_gateway(settings):
    """The sandbox's webhooks go nowhere; the worker's round asks the gateway and sells."""
    async with shop(settings, sandbox_webhook_url="http://127.0.0.1:9/webhooks/sandbox",
                    sandbox_webhook_attempts=1) as store, guest(store) as buyer:
        event, pkg = await _event(store)
        order = await buyer.order_until_paying(event, pkg)
        await buyer.pay_on_hosted_page(order)
        assert (await buyer.order(order["order_number"]))["status"] == "awaiting_payment"
        payments = store.app[PAYMENTS]
        assert await payments.verify_pending(older_than_seconds=0) == 1
        assert (await buyer.order(order["order_number"]))["status"] == "paid"
        assert await payments.verify_pending(older_than_seconds=0) == 0  # nothing left to ask
        # the status page's own check (?verify=1) does the same for a buyer who is waiting
        other = await buyer.order_until_paying(event, pkg)
        await buyer.pay_on_hosted_page(other)
        status, body = await buyer.call("GET", f"/api/orders/{other['order_number']}?verify=1")
        assert status == 200 and body["status"] == "paid"


async def test_a_refund_due_is_refunded_through_the_gateway(store: Shop):
    event, pkg = await _event(store, capacity=1)
    async with guest(store) as buyer:
        order = await buyer.order_until_paying(event, pkg)
        draft = await store.app[ORDERS].get(order["order_number"])
        await lapse(store.app[INVENTORY], event["id"], draft.hold_id)
        async with guest(store) as rival:
            assert await rival.order_until_paying(event, pkg) is not None  # and was taken
        await buyer.pay_on_hosted_page(order)
        due = await buyer.until(order["order_number"], ("refund_due",))
    assert due["status"] == "refund_due"
    db = store.app[DB]
    assert await db.fetchval("SELECT state FROM payments WHERE order_number = $1",
                             order["order_number"]) == "refund_due"
    assert await store.app[PAYMENTS].refund_due() == 1
    row = await db.fetchrow("SELECT state, reason FROM payments WHERE order_number = $1",
                            order["order_number"])
    assert row["state"] == "refunded" and "refund" in row["reason"]
    assert await store.app[PAYMENTS].refund_due() == 0
    status = await store.app[GATEWAYS]["sandbox"].fetch_status(due["payments"][-1]["reference"],
                                                               due["payments"][-1]["gateway_ref"])
    assert status.state == "succeeded"  # the payment stands; its money went back as a refund
