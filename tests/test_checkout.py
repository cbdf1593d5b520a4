"""From a hold to a paid order: order drafts, payment attempts, and settling what gateways report
exactly once (real Redis and Postgres; gateway events made as the gateway would send them)."""

from __future__ import annotations

import asyncio

import pytest

from engine.audit import audit
from engine.payments.base import PaymentStatus, WebhookEvent
from storefront.appkeys import DB, INVENTORY, ORDERS, PAYMENTS
from tests.inventory_helpers import lapse

EV = "/api/provider/events"
BILLING = {"name": "Chikondi Banda", "email": "chikondi@example.test", "phone": "+265 991 234 567"}


async def _on_sale(factory, capacity=10, service_fee=0, **package):
    provider = await factory.user("provider")
    event = await factory.event(provider, service_fee=service_fee)
    pkg = await factory.package(provider, event["id"], capacity=capacity, price=15_000, **package)
    assert (await factory.client.post(f"{EV}/{event['id']}/publish", headers=provider.h)).status == 200
    return provider, event, pkg


async def _hold(client, buyer, event, pkg, quantity=2):
    resp = await client.post(f"/api/events/{event['id']}/holds", headers=buyer.h,
                             json={"items": [{"package_id": pkg["id"], "quantity": quantity}]})
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def _checkout(client, buyer, hold, **body):
    return await client.post(f"/api/holds/{hold['id']}/checkout", headers=buyer.h, json={
        "billing": BILLING, "accept_terms": True, "use_buyer_details": True, **body})


def _event(reference, state, amount, currency="MWK", event_id=None, gateway_ref="gw-1"):
    status = PaymentStatus(reference=reference, gateway_ref=gateway_ref, state=state, amount=amount,
                           currency=currency, method="card",
                           reason="declined" if state == "failed" else None)
    return WebhookEvent(gateway="sandbox", event_id=event_id or f"evt-{reference}-{state}", status=status)


async def _attempt(app, order):
    """Begin an attempt as the pay route does before calling a gateway; its reference."""
    _, reference, _ = await app[ORDERS].begin_payment(order["event_id"], order["hold_id"],
                                                         (await app[ORDERS].get(order["order_number"])).buyer,
                                                         "sandbox", "card")
    await app[ORDERS].record_payment(order["event_id"], order["hold_id"], reference, "pending",
                                     gateway_ref="gw-1")
    return reference


async def test_checkout_makes_a_draft_with_exact_amounts(client, factory):
    _, event, pkg = await _on_sale(factory, service_fee=750)
    buyer = await factory.user()
    hold = await _hold(client, buyer, event, pkg, 3)
    resp = await _checkout(client, buyer, hold)
    order = await resp.json()
    assert resp.status == 200, order
    assert order["order_number"].startswith("ORD-") and order["status"] == "draft"
    assert (order["subtotal"], order["fees"], order["total"]) == (45_000, 2_250, 47_250)
    assert [a["name"] for a in order["attendees"]] == [BILLING["name"]] * 3
    again = await (await _checkout(client, buyer, hold, use_buyer_details=False, attendees=[
        {"name": f"Guest {i}", "email": f"g{i}@example.test"} for i in range(3)])).json()
    assert again["order_number"] == order["order_number"]  # one order per hold
    assert [a["name"] for a in again["attendees"]] == ["Guest 0", "Guest 1", "Guest 2"]


@pytest.mark.parametrize("body, status, code", [
    ({"use_buyer_details": False, "attendees": [{"name": "A", "email": "a@example.test"}]}, 422,
     "attendees_mismatch"),
    ({"accept_terms": False}, 422, "invalid"),
    ({"billing": {**BILLING, "email": "not-an-email"}}, 422, "invalid"),
    ({"billing": {**BILLING, "phone": "call me"}}, 422, "invalid"),
    ({"use_buyer_details": False, "attendees": [{"name": "", "email": "a@example.test"}] * 2}, 422,
     "invalid"),
])
async def test_bad_checkouts_are_refused_and_change_nothing(client, factory, body, status, code):
    _, event, pkg = await _on_sale(factory)
    buyer = await factory.user()
    hold = await _hold(client, buyer, event, pkg)
    resp = await _checkout(client, buyer, hold, **body)
    assert resp.status == status and (await resp.json())["error"] == code
    assert await client.server.app[ORDERS].draft(event["id"], hold["id"]) is None


async def test_only_the_holder_checks_out_and_sees_the_order(client, factory):
    _, event, pkg = await _on_sale(factory)
    buyer, other = await factory.user(), await factory.user()
    hold = await _hold(client, buyer, event, pkg)
    assert (await _checkout(client, other, hold)).status in (403, 404)
    order = await (await _checkout(client, buyer, hold)).json()
    url = f"/api/orders/{order['order_number']}"
    assert (await client.get(url, headers=buyer.h)).status == 200
    assert (await client.get(url, headers=other.h)).status == 404
    client.session.cookie_jar.clear()
    assert (await client.get(order["link"].replace("/orders/", "/api/orders/"))).status == 200
    assert (await client.get(url + "?t=" + "0" * 32)).status == 404


async def test_200_deliveries_of_one_webhook_sell_once_and_log_once(client, factory, db):
    app = client.server.app
    _, event, pkg = await _on_sale(factory)
    buyer = await factory.user()
    hold = await _hold(client, buyer, event, pkg, 2)
    order = await (await _checkout(client, buyer, hold)).json()
    reference = await _attempt(app, order)
    delivery = _event(reference, "succeeded", order["total"])
    outcomes = await asyncio.gather(*[app[PAYMENTS].settle(delivery, b"{}") for _ in range(200)])
    assert sorted(set(outcomes)) == ["duplicate", "succeeded"] and outcomes.count("succeeded") == 1
    assert await db.fetchval("SELECT count(*) FROM payment_events") == 1
    assert await db.fetchval("SELECT state FROM payments WHERE reference = $1", reference) == "succeeded"
    stock = (await app[INVENTORY].availability(event["id"])).packages[pkg["id"]]
    assert (stock.sold, stock.held, stock.available) == (2, 0, 8)
    assert (await app[ORDERS].get(order["order_number"])).status == "paid"
    stream = await app[INVENTORY].client.xrange(app[INVENTORY].keys.event(event["id"], "orders"))
    assert len(stream) == 1
    assert await audit(app[INVENTORY], event["id"], app[DB]) == []


async def test_a_failure_reported_after_the_success_changes_nothing(client, factory, db):
    app = client.server.app
    _, event, pkg = await _on_sale(factory)
    buyer = await factory.user()
    order = await (await _checkout(client, buyer, await _hold(client, buyer, event, pkg))).json()
    reference = await _attempt(app, order)
    assert await app[PAYMENTS].settle(_event(reference, "succeeded", order["total"]), b"{}") == "succeeded"
    assert await app[PAYMENTS].settle(_event(reference, "failed", order["total"]), b"{}") == "already succeeded"
    assert await app[PAYMENTS].settle(_event(reference, "pending", order["total"]), b"{}") == "already succeeded"
    assert await db.fetchval("SELECT state FROM payments WHERE reference = $1", reference) == "succeeded"
    assert (await app[ORDERS].get(order["order_number"])).status == "paid"


async def test_a_failure_then_a_retry_that_succeeds(client, factory, db):
    app = client.server.app
    _, event, pkg = await _on_sale(factory)
    buyer = await factory.user()
    order = await (await _checkout(client, buyer, await _hold(client, buyer, event, pkg))).json()
    first = await _attempt(app, order)
    assert await app[PAYMENTS].settle(_event(first, "failed", order["total"]), b"{}") == "failed"
    assert (await app[ORDERS].get(order["order_number"])).status == "payment_failed"
    second = await _attempt(app, order)
    assert await app[PAYMENTS].settle(_event(second, "succeeded", order["total"]), b"{}") == "succeeded"
    states = dict(await db.fetch("SELECT reference, state FROM payments"))
    assert states == {first: "failed", second: "succeeded"}


@pytest.mark.parametrize("short, currency", [(1, "MWK"), (0, "USD"), (-100, "MWK")])
async def test_an_amount_that_does_not_match_is_refunded_not_sold(client, factory, db, short, currency):
    app = client.server.app
    _, event, pkg = await _on_sale(factory)
    buyer = await factory.user()
    order = await (await _checkout(client, buyer, await _hold(client, buyer, event, pkg))).json()
    reference = await _attempt(app, order)
    paid = _event(reference, "succeeded", order["total"] - short, currency)
    assert await app[PAYMENTS].settle(paid, b"{}") == "refund_due"
    assert (await app[INVENTORY].availability(event["id"])).packages[pkg["id"]].sold == 0
    assert (await app[ORDERS].get(order["order_number"])).status == "refund_due"
    assert await db.fetchval("SELECT state FROM payments WHERE reference = $1", reference) == "refund_due"


async def test_two_attempts_both_paid_keep_one_and_refund_the_other(client, factory, db):
    app = client.server.app
    _, event, pkg = await _on_sale(factory)
    buyer = await factory.user()
    order = await (await _checkout(client, buyer, await _hold(client, buyer, event, pkg))).json()
    first = await _attempt(app, order)
    await app[PAYMENTS].settle(_event(first, "failed", order["total"], event_id="f1"), b"{}")
    second = await _attempt(app, order)
    # the first gateway changes its mind and both succeed at once
    outcomes = await asyncio.gather(
        app[PAYMENTS].settle(_event(first, "succeeded", order["total"]), b"{}"),
        app[PAYMENTS].settle(_event(second, "succeeded", order["total"]), b"{}"))
    assert sorted(outcomes) == ["refund_due", "succeeded"]
    assert await db.fetchval("SELECT count(*) FROM payments WHERE state = 'succeeded'") == 1
    assert (await app[INVENTORY].availability(event["id"])).packages[pkg["id"]].sold == 2


async def test_a_late_payment_whose_tickets_are_gone_is_refunded(client, factory, db):
    app = client.server.app
    _, event, pkg = await _on_sale(factory, capacity=2)
    buyer, rival = await factory.user(), await factory.user()
    hold = await _hold(client, buyer, event, pkg, 2)
    order = await (await _checkout(client, buyer, hold)).json()
    reference = await _attempt(app, order)
    await lapse(app[INVENTORY], event["id"], hold["id"])
    await _hold(client, rival, event, pkg, 2)  # and someone else took the tickets
    assert await app[PAYMENTS].settle(_event(reference, "succeeded", order["total"]), b"{}") == "refund_due"
    row = await db.fetchrow("SELECT state, reason FROM payments WHERE reference = $1", reference)
    assert row["state"] == "refund_due" and "sold to someone else" in row["reason"]
    body = await (await client.get(f"/api/orders/{order['order_number']}", headers=buyer.h)).json()
    assert body["status"] == "refund_due"
    assert await audit(app[INVENTORY], event["id"], app[DB]) == []


async def test_one_attempt_at_a_time(client, factory):
    app = client.server.app
    _, event, pkg = await _on_sale(factory)
    buyer = await factory.user()
    order = await (await _checkout(client, buyer, await _hold(client, buyer, event, pkg))).json()
    draft = await app[ORDERS].get(order["order_number"])
    results = await asyncio.gather(*[app[ORDERS].begin_payment(
        event["id"], order["hold_id"], draft.buyer, "sandbox", "card") for _ in range(20)],
        return_exceptions=True)
    started = [r for r in results if not isinstance(r, Exception)]
    assert len(started) == 1
    assert {getattr(r, "code", None) for r in results if isinstance(r, Exception)} == {"payment_pending"}
    resp = await _checkout(client, buyer, {"id": order["hold_id"]})  # no edits while paying
    assert resp.status == 409 and (await resp.json())["error"] == "payment_in_progress"


async def test_cancel_before_paying_gives_the_hold_back(client, factory):
    app = client.server.app
    _, event, pkg = await _on_sale(factory)
    buyer = await factory.user()
    order = await (await _checkout(client, buyer, await _hold(client, buyer, event, pkg, 3))).json()
    url = f"/api/orders/{order['order_number']}/cancel"
    assert (await client.post(url, headers=buyer.h)).status == 204
    assert (await app[INVENTORY].availability(event["id"])).packages[pkg["id"]].available == 10
    assert (await app[ORDERS].get(order["order_number"])).status == "cancelled"
    other = await (await _checkout(client, buyer, await _hold(client, buyer, event, pkg, 1))).json()
    await _attempt(app, other)
    resp = await client.post(f"/api/orders/{other['order_number']}/cancel", headers=buyer.h)
    assert resp.status == 409 and (await resp.json())["error"] == "payment_pending"


async def test_a_mobile_money_push_extends_the_hold_once_within_a_bound(client, factory):
    app = client.server.app
    _, event, pkg = await _on_sale(factory)
    buyer = await factory.user()
    hold = await _hold(client, buyer, event, pkg)
    owner = f"u:{buyer.user['id']}"
    before = (await app[INVENTORY].get_hold(event["id"], hold["id"])).expires_at
    longest = 900 + 600
    first = await app[ORDERS].extend_hold(event["id"], hold["id"], owner, 1200, longest)
    second = await app[ORDERS].extend_hold(event["id"], hold["id"], owner, 1400, longest)
    created = (await app[INVENTORY].get_hold(event["id"], hold["id"])).created_at
    assert first > before and second == first  # once
    assert (first - created).total_seconds() <= longest
    assert await audit(app[INVENTORY], event["id"]) == []
