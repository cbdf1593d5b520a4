"""The sandbox's hosted pages in real headless Chromium: a buyer pays with the test cards (one
straight through, one through a 3-D Secure challenge), watches a mobile-money push complete, and
lands back on the merchant's return URL with the right status. Fails on any JavaScript error,
console error or Content-Security-Policy violation. Screenshots of each page at 1280 and 390 px
go to .kwika/test/screens/."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox_helpers import (  # noqa: F401 - the fixtures are used by name
    Sandbox,
    StartSandbox,
    hook_fixture,
    start_sandbox_fixture,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENS = Path(__file__).resolve().parents[1] / ".kwika" / "test" / "screens"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"page tests need Chromium at {CHROMIUM} (apt-get install chromium)"),
]

pw = pytest.importorskip("playwright.async_api", reason="page tests need the playwright package")
expect = pw.expect
Page = pw.Page

# Chromium reports a CSP violation on the console; logging the violation event itself as an
# error makes sure each one is seen, whatever the browser version prints.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => console.error(
  `CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline code"}`));
"""


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    async with pw.async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture
async def sandbox(start_sandbox: StartSandbox) -> Sandbox:
    return await start_sandbox(sandbox_settle_ms=1500)  # long enough to see the waiting page


@pytest.fixture
async def page(browser: Any, sandbox: Sandbox) -> AsyncIterator[Page]:
    """A fresh context on the app; the test fails on any error the page reports."""
    context = await browser.new_context(base_url=str(sandbox.client.make_url("")).rstrip("/"))
    context.set_default_timeout(10_000)
    await context.add_init_script(REPORT_CSP_VIOLATIONS)
    tab = await context.new_page()
    errors: list[tuple[str, str]] = []  # (text, url)
    error_documents: set[str] = set()  # pages answered 4xx: the browser logs them as errors
    tab.on("pageerror", lambda exc: errors.append((f"JavaScript error: {exc}", "")))
    tab.on("console", lambda msg: errors.append((f"console.{msg.type}: {msg.text}",
                                                 msg.location.get("url", "")))
           if msg.type in ("error", "assert") else None)
    tab.on("response", lambda r: error_documents.add(r.url)
           if r.status >= 400 and r.request.resource_type == "document" else None)
    yield tab
    await context.close()
    # a test that shows an error page checks its status itself; there is no favicon yet
    unexpected = [f"{text} at {url}" for text, url in errors
                  if not (text.startswith("console.error: Failed to load resource")
                          and (url in error_documents or url.endswith("/favicon.ico")))]
    assert not unexpected, f"errors on the page: {unexpected}"


async def screenshots(page: Page, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        await page.set_viewport_size({"width": width, "height": 900})
        await page.screenshot(path=str(SCREENS / f"sandbox-{name}-{width}.png"), full_page=True)
    await page.set_viewport_size({"width": 1280, "height": 900})


async def pay_with(page: Page, card: str) -> None:
    await page.get_by_label("Card number").fill(card)
    await page.get_by_label("Expiry (MM/YY)").fill("12/34")
    await page.get_by_label("CVC").fill("123")
    await page.get_by_role("button", name="Pay MWK 60,000.00").click()


def landed(reference: str, status: str) -> re.Pattern[str]:
    return re.compile(re.escape(f"/test/return?reference={reference}&status={status}") + "$")


async def test_a_buyer_pays_with_the_success_card_and_returns(page: Page, sandbox: Sandbox):
    req = sandbox.request()
    start = await sandbox.gateway.create_payment(req)
    await page.goto(start.action.url)
    await expect(page.get_by_test_id("sandbox-banner")).to_contain_text("Sandbox — no real money")
    await expect(page.get_by_test_id("amount")).to_have_text("MWK 60,000.00")
    await expect(page.get_by_test_id("merchant")).to_have_text("Kwika")
    await expect(page.get_by_test_id("test-cards")).to_contain_text("4242 4242 4242 4242")
    await screenshots(page, "card")

    # a card that is not a test card is refused in words, next to the field
    async with page.expect_response(re.compile(r"/card$")) as refused:
        await pay_with(page, "4111 1111 1111 1111")
    assert (await refused.value).status == 422
    await expect(page.get_by_test_id("error-card_number")).to_contain_text("test cards")
    await expect(page.get_by_label("Card number")).to_have_attribute("aria-invalid", "true")

    # the "Use" buttons (sandbox.js) fill the form
    await page.get_by_role("button", name="Use card ending 4242").click()
    await expect(page.get_by_label("Card number")).to_have_value("4242 4242 4242 4242")
    await page.get_by_role("button", name="Pay MWK 60,000.00").click()
    await expect(page.get_by_role("heading", name="Payment successful")).to_be_visible()
    await expect(page).to_have_url(landed(req.reference, "succeeded"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Back at the shop: succeeded")
    assert (await sandbox.gateway.fetch_status(req.reference, start.gateway_ref)).state == "succeeded"

    # going back to the gateway's page shows the outcome and offers no second payment
    await page.goto(start.action.url)
    await expect(page.get_by_test_id("result")).to_have_attribute("data-status", "succeeded")
    await expect(page.get_by_label("Card number")).to_have_count(0)
    await screenshots(page, "result")


async def test_a_3ds_card_passes_its_challenge(page: Page, sandbox: Sandbox):
    req = sandbox.request()
    start = await sandbox.gateway.create_payment(req)
    await page.goto(start.action.url)
    await pay_with(page, "4000 0000 0000 3220")
    await expect(page.get_by_role("heading", name="Confirm it is you")).to_be_visible()
    await screenshots(page, "challenge")
    await page.get_by_role("button", name="Complete authentication").click()
    await expect(page).to_have_url(landed(req.reference, "succeeded"))
    deliveries = await sandbox.hook.wait_for(req.reference, 2)
    assert sandbox.parse(deliveries[1]).status.state == "succeeded"


async def test_a_declined_card_returns_with_status_failed(page: Page, sandbox: Sandbox):
    req = sandbox.request()
    start = await sandbox.gateway.create_payment(req)
    await page.goto(start.action.url)
    await pay_with(page, "4000 0000 0000 0002")
    await expect(page.get_by_test_id("reason")).to_have_text(
        "The card was declined. Nothing was charged.")
    await expect(page).to_have_url(landed(req.reference, "failed"))


async def test_the_mobile_money_page_follows_the_push_by_itself(page: Page, sandbox: Sandbox):
    req = sandbox.request("mobile_money")
    start = await sandbox.gateway.create_payment(req)
    await page.goto(start.action.url)
    await expect(page.get_by_role("heading", name="Approve on your phone")).to_be_visible()
    await screenshots(page, "push")
    await expect(page).to_have_url(landed(req.reference, "succeeded"))


async def test_the_bank_transfer_page_waits_for_the_money(page: Page, sandbox: Sandbox):
    req = sandbox.request("bank_transfer")
    start = await sandbox.gateway.create_payment(req)
    await page.goto(start.action.url)
    await expect(page.get_by_test_id("instructions")).to_contain_text("Sandbox Bank")
    await screenshots(page, "transfer")
    await page.get_by_role("button", name="I have paid").click()
    await expect(page.get_by_role("heading", name="Checking for your payment")).to_be_visible()
    await expect(page).to_have_url(landed(req.reference, "succeeded"))
