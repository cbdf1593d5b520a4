"""Buying in real headless Chromium, from the basket through checkout and the sandbox gateway's
hosted page back to the confirmation: a signed-in buyer and a guest, a declined card then a
retry, 3-D Secure, mobile money, a hold that runs out during checkout, and refresh / back on the
way that never pays twice. Each page passes axe-core (no serious or critical violation) and is
photographed at 1280 and 390 px under test-artifacts/screenshots/. The sandbox's webhooks come
back to the app itself, as in production."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from engine.audit import audit
from storefront.app import create_app
from storefront.appkeys import DB, INVENTORY, ORDERS
from storefront.templating import local
from tests.browser import BROWSER_MARKS, check_axe, screenshots
from tests.factories import PASSWORD, Factory

pytestmark = BROWSER_MARKS
pw = pytest.importorskip("playwright.async_api", reason="page tests need the playwright package")
expect = pw.expect
Page = pw.Page

EV = "/api/provider/events"
CARD_OK, CARD_DECLINED, CARD_3DS = "4242 4242 4242 4242", "4000 0000 0000 0002", "4000 0000 0000 3220"
PAY = "Pay MWK 510.00"  # 2 × MWK 250.00 and a MWK 5.00 fee per ticket


@pytest.fixture
async def client(settings) -> AsyncIterator[TestClient]:
    """The app with the sandbox gateway on (the `page` fixture serves this one)."""
    fast = {"sandbox": True, "sandbox_settle_ms": 1000, "sandbox_webhook_url": None,
            "sandbox_webhook_backoff_ms": 50}
    async with TestClient(TestServer(create_app(msgspec.structs.replace(settings, **fast)))) as c:
        yield c


@pytest.fixture
async def sale(client: TestClient) -> dict[str, Any]:
    factory = Factory(client)
    provider = await factory.user("provider")
    ev = await factory.event(provider, title="Lake of Stars", venue="Chintheche Inn",
                             city="Nkhata Bay", service_fee=500, timezone="Africa/Blantyre")
    pkg = await factory.package(provider, ev["id"], name="General admission", capacity=10,
                                price=25_000)
    assert (await client.post(f"{EV}/{ev['id']}/publish", headers=provider.h)).status == 200
    return {"event": ev, "package": pkg, "factory": factory, "app": client.server.app}


async def look(page: Page, name: str) -> None:
    """axe-core on the page, then a screenshot at 1280 and at 390 px."""
    await check_axe(page)
    await screenshots(page, f"checkout-{name}")


async def basket(page: Page, sale: dict, quantity: int = 2, *, from_index: bool = False) -> str:
    """Hold tickets and open the basket; the hold id. `from_index`: as a buyer does it, from the
    events index through the event page's stepper and Continue; otherwise the event page is
    visited once and the hold made through its JSON API (quicker, for the later steps' tests)."""
    ev = sale["event"]
    if from_index:
        await page.goto("/events")
        await page.get_by_role("link", name=ev["title"]).first.click()
        await expect(page).to_have_url(re.compile(f"/events/{ev['slug']}$"))
        plus = page.get_by_role("button", name=f"One more: {sale['package']['name']}")
        for _ in range(quantity):
            await plus.click()
        await page.get_by_test_id("continue").click()
        await expect(page).to_have_url(re.compile(r"/holds/H[\w-]+$"))
        return page.url.rsplit("/", 1)[1]
    await page.goto(f"/events/{ev['slug']}")
    token = await page.locator("meta[name=csrf-token]").get_attribute("content")
    resp = await page.request.post(f"/api/events/{ev['id']}/holds", headers={"X-CSRF-Token": token},
                                   data={"items": [{"package_id": sale["package"]["id"],
                                                    "quantity": quantity}]})
    assert resp.status == 201, await resp.text()
    hold_id = (await resp.json())["id"]
    await page.goto(f"/holds/{hold_id}")
    return hold_id


async def expires_in(app, event_id: int, hold_id: str, seconds: float) -> None:
    """Move a hold's expiry to `seconds` from now by the server's clock (as if time had passed)."""
    inventory = app[INVENTORY]
    holds = inventory.keys.event(event_id, "holds")
    raw = msgspec.json.decode(await inventory.client.hget(holds, hold_id))
    now_s, micros = await inventory.client.time()
    raw["expires"] = now_s * 1000 + micros // 1000 + int(seconds * 1000)
    await inventory.client.hset(holds, hold_id, msgspec.json.encode(raw))
    await inventory.client.zadd(inventory.keys.event(event_id, "expiry"), {hold_id: raw["expires"]})


async def check_out(page: Page, method: str = "Card", name: str = "Thoko Phiri") -> None:
    """Fill the checkout form (details used for every ticket) and press Pay."""
    if await page.get_by_label("Full name").input_value() == "":
        await page.get_by_label("Full name").fill(name)
        await page.get_by_label("Email address").first.fill("thoko@example.test")
    await page.get_by_label("Phone number").first.fill("+265 888 123 456")
    await page.get_by_role("radio", name=re.compile(f"^{method}")).check()
    await page.get_by_label("I accept the terms of sale").check()
    await page.get_by_role("button", name=PAY).click()


async def pay_by_card(page: Page, card: str) -> None:
    await expect(page.get_by_test_id("sandbox-banner")).to_be_visible()
    await page.get_by_label("Card number").fill(card)
    await page.get_by_label("Expiry (MM/YY)").fill("12/34")
    await page.get_by_label("CVC").fill("123")
    await page.get_by_role("button", name=PAY).click()


async def confirmed(page: Page, sale: dict) -> str:
    """The confirmation is shown and the engine sold the order; its number."""
    await expect(page.get_by_test_id("confirmation")).to_be_visible(timeout=15_000)
    number = (await page.get_by_test_id("order-number").text_content()).strip()
    app = sale["app"]
    draft = await app[ORDERS].get(number)
    assert draft.status == "paid" and draft.total == 51_000
    stock = (await app[INVENTORY].availability(sale["event"]["id"])).packages[sale["package"]["id"]]
    assert (stock.sold, stock.held) == (2, 0)
    assert await app[DB].fetchval("SELECT count(*) FROM payments WHERE order_number = $1 "
                                  "AND state = 'succeeded'", number) == 1
    return number


async def test_a_signed_in_buyer_buys_two_tickets(page: Page, sale: dict):
    buyer = await sale["factory"].user()
    await page.goto("/login")
    await page.get_by_label("Email").fill(buyer.user["email"])
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_test_id("who")).to_be_visible()

    hold_id = await basket(page, sale, from_index=True)
    await expect(page.get_by_role("heading", name="Your basket")).to_be_visible()
    await expect(page.get_by_test_id("line")).to_contain_text("2 × General admission")
    await expect(page.get_by_test_id("total")).to_have_text("MWK 510.00")
    await expect(page.get_by_test_id("countdown")).to_contain_text(re.compile(r"1[45]:\d\d"))
    await look(page, "basket")

    await page.get_by_role("link", name="Checkout").click()
    await expect(page).to_have_url(re.compile(f"/holds/{hold_id}/checkout$"))
    await expect(page.get_by_label("Full name")).to_have_value(buyer.user["name"])  # the account's
    await expect(page.get_by_label("Name", exact=True)).to_have_count(2)
    await expect(page.get_by_label("Name", exact=True).first).to_be_hidden()  # same details for all
    await look(page, "checkout")
    await check_out(page)
    await pay_by_card(page, CARD_OK)
    number = await confirmed(page, sale)
    await expect(page.get_by_test_id("paid-with")).to_have_text("Card")
    await expect(page.get_by_test_id("attendees")).to_contain_text(buyer.user["name"])
    await expect(page.get_by_test_id("order-link")).to_have_count(0)  # an account needs no link
    await look(page, "confirmation")
    assert (await sale["app"][ORDERS].get(number)).buyer == f"u:{buyer.user['id']}"


async def test_a_guest_buys_two_tickets_and_keeps_a_link_to_the_order(page: Page, sale: dict,
                                                                      browser: Any):
    await basket(page, sale, from_index=True)
    await page.get_by_role("link", name="Checkout").click()
    await page.get_by_label("Use my details for every ticket").uncheck()
    for i, who in enumerate(("Ada Banda", "Kondwani Phiri")):
        ticket = page.get_by_role("group", name=re.compile(f"^Ticket {i + 1}"))
        await ticket.get_by_label("Name", exact=True).fill(who)
        await ticket.get_by_label("Email address").fill(f"{who.split()[0].lower()}@example.test")
    await check_out(page)
    await pay_by_card(page, CARD_OK)
    number = await confirmed(page, sale)
    await expect(page.get_by_test_id("attendees")).to_contain_text("Kondwani Phiri")
    assert [a.name for a in (await sale["app"][ORDERS].get(number)).attendees] == [
        "Ada Banda", "Kondwani Phiri"]
    link = await page.get_by_test_id("order-link").input_value()
    assert re.search(rf"/orders/{number}\?t=\w+", link)
    await look(page, "confirmation-guest")
    # the link opens the order in another browser, where nobody is signed in
    other = await browser.new_context()
    try:
        elsewhere = await other.new_page()
        await elsewhere.goto(link)
        await expect(elsewhere.get_by_test_id("order-number")).to_have_text(number)
    finally:
        await other.close()


async def test_a_declined_card_then_a_retry_that_succeeds(page: Page, sale: dict):
    await basket(page, sale)
    await page.get_by_role("link", name="Checkout").click()
    await check_out(page)
    await pay_by_card(page, CARD_DECLINED)
    await expect(page.get_by_role("heading", name="Your payment did not go through")).to_be_visible()
    await expect(page.get_by_test_id("failure")).to_have_text(
        "The card was declined. Nothing was charged.")
    await look(page, "payment-failed")
    await page.get_by_role("radio", name=re.compile("^Card")).check()
    await page.get_by_role("button", name=PAY).click()
    await pay_by_card(page, CARD_OK)
    number = await confirmed(page, sale)
    states = [a.state for a in (await sale["app"][ORDERS].get(number)).payments]
    assert states == ["failed", "succeeded"]


async def test_a_3d_secure_card_passes_its_challenge(page: Page, sale: dict):
    await basket(page, sale)
    await page.get_by_role("link", name="Checkout").click()
    await check_out(page)
    await pay_by_card(page, CARD_3DS)
    await page.get_by_role("button", name="Complete authentication").click()
    await confirmed(page, sale)


async def test_mobile_money_is_approved_on_the_phone(page: Page, sale: dict):
    hold_id = await basket(page, sale)
    await expires_in(sale["app"], sale["event"]["id"], hold_id, 60)  # a minute left
    await page.get_by_role("link", name="Checkout").click()
    await page.get_by_role("radio", name=re.compile("^Mobile money")).check()
    await page.get_by_role("radio", name="Airtel Money", exact=True).check()
    await check_out(page, method="Mobile money")
    await expect(page.get_by_role("heading", name="Approve on your phone")).to_be_visible()
    await expect(page.get_by_test_id("kept-until")).to_contain_text("kept a little longer")
    hold = await sale["app"][INVENTORY].get_hold(sale["event"]["id"], hold_id)
    assert (hold.expires_at - datetime.now(UTC)).total_seconds() > 4 * 60  # extended for the PIN
    await expect(page.get_by_test_id("kept-until")).to_contain_text(
        local(hold.expires_at, "Africa/Blantyre", "%H:%M"))
    await look(page, "mobile-money")
    await confirmed(page, sale)  # the page follows the payment by itself


async def test_a_hold_that_runs_out_during_checkout_is_released(page: Page, sale: dict):
    hold_id = await basket(page, sale)
    inventory = sale["app"][INVENTORY]
    ev = sale["event"]
    await expires_in(sale["app"], ev["id"], hold_id, 2)  # as if 14:58 had passed
    await page.goto(f"/holds/{hold_id}/checkout")
    await expect(page.get_by_test_id("countdown")).to_contain_text(re.compile(r"0:0[0-2]"))
    await expect(page.get_by_role("heading", name="Your tickets were released")).to_be_visible()
    await expect(page.get_by_test_id("notice-message")).to_contain_text("back on sale")
    await look(page, "released")
    stock = (await inventory.availability(ev["id"])).packages[sale["package"]["id"]]
    assert (stock.available, stock.held) == (10, 0)
    await page.get_by_test_id("back-to-event").click()
    await expect(page).to_have_url(re.compile(f"/events/{ev['slug']}$"))
    assert await audit(inventory, ev["id"]) == []


async def test_refresh_and_back_never_start_a_second_payment(page: Page, sale: dict):
    hold_id = await basket(page, sale)
    await page.get_by_role("link", name="Checkout").click()
    await check_out(page)
    await expect(page.get_by_test_id("sandbox-banner")).to_be_visible()
    gateway_page = page.url
    draft = await sale["app"][ORDERS].draft(sale["event"]["id"], hold_id)
    await page.go_back()  # to the checkout: it shows the payment under way, not a new form
    await expect(page.get_by_role("heading", name="Waiting for your payment")).to_be_visible()
    await look(page, "payment-waiting")
    await page.reload()
    await page.get_by_test_id("check-again").click()
    await expect(page.get_by_role("heading", name="Waiting for your payment")).to_be_visible()
    await page.goto(gateway_page)
    await pay_by_card(page, CARD_OK)
    await confirmed(page, sale)
    await page.go_back()  # the gateway's page shows its outcome, and takes no card again
    await page.reload()
    await expect(page.get_by_test_id("result")).to_have_attribute("data-status", "succeeded")
    await expect(page.get_by_label("Card number")).to_have_count(0)
    final = await sale["app"][ORDERS].get(draft.order_number)
    assert len(final.payments) == 1 and final.payments[0].state == "succeeded"
