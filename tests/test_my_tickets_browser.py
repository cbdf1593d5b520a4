"""My tickets in real headless Chromium: a signed-in buyer whose order the fulfillment consumer
wrote sees the ticket card, whose QR code (read back from a screenshot) is the ticket's signed
payload; downloads the PDF; gives a ticket to someone else (a wrong email first). Each page passes
axe-core and is photographed at 1280 and 390 px under test-artifacts/screenshots/."""

from __future__ import annotations

import asyncio
import io

import msgspec
import pytest
import zxingcpp
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from engine.settings import Secret
from engine.tickets import Keyring, verify_ticket
from storefront.app import create_app
from storefront.appkeys import DB, INVENTORY
from tests.browser import BROWSER_MARKS, check_axe, screenshots
from tests.factories import PASSWORD, Factory
from tests.test_fulfillment import _desk, _sell
from tests.test_ticket_pdf import pages_of

pytestmark = BROWSER_MARKS
pw = pytest.importorskip("playwright.async_api", reason="page tests need the playwright package")
expect = pw.expect
KEYRING = Keyring.generate("MTB")


@pytest.fixture
async def client(settings, tmp_path):
    mine = msgspec.structs.replace(settings, ticket_signing_keys=Secret(KEYRING.to_text()),
                                   tickets_dir=str(tmp_path / "tickets"), ticket_render_workers=1)
    async with TestClient(TestServer(create_app(mine))) as test_client:
        yield test_client


async def look(page, name: str) -> None:
    await check_axe(page)
    await screenshots(page, f"mytickets-{name}")


async def test_a_buyer_sees_the_card_downloads_the_pdf_and_gives_a_ticket_away(page, client):
    app = client.server.app
    factory = Factory(client)
    provider, buyer = await factory.user("provider"), await factory.user()
    event = await factory.event(provider, title="Lake of Stars", venue="Chintheche Inn",
                                address="M5", city="Nkhata Bay", timezone="Africa/Blantyre")
    pkg = await factory.package(provider, event["id"], name="Weekend pass", capacity=10)
    assert (await client.post(f"/api/provider/events/{event['id']}/publish",
                              headers=provider.h)).status == 200
    await _sell(app[INVENTORY], event["id"], f"u:{buyer.user['id']}", {pkg["id"]: 2},
                number="ORD-7-LAKE")
    assert await _desk(app).round() == 1
    first, second = [r["ticket_number"] for r in await app[DB].fetch(
        "SELECT ticket_number FROM tickets ORDER BY id")]

    await page.goto("/login")
    await page.get_by_label("Email").fill(buyer.user["email"])
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.get_by_test_id("account-menu").click()
    await page.get_by_role("link", name="My tickets").click()
    card = page.locator(f'[data-ticket="{first}"]')
    await expect(card.get_by_test_id("ticket-status")).to_have_text("Valid")
    await expect(card.get_by_test_id("directions")).to_have_attribute(
        "href", "https://www.google.com/maps/search/?api=1&query=Chintheche+Inn%2C+M5%2C+Nkhata+Bay")
    await look(page, "list")

    # the QR code on the screen is the ticket's signed payload
    code = card.get_by_test_id("ticket-qr")
    shot = Image.open(io.BytesIO(await code.locator("svg").screenshot()))
    (read,) = [c.text for c in zxingcpp.read_barcodes(shot)]
    assert read == await code.get_attribute("data-payload")
    claims = verify_ticket(KEYRING.public_keys, read)
    assert (claims.ticket_number, claims.event_id, claims.generation) == (first, event["id"], 1)

    # the PDF: one page per ticket, each code verifying
    async with page.expect_download() as download:
        await card.locator("xpath=ancestor::section").get_by_test_id("pdf").click()
    pdf = (await (await download.value).path()).read_bytes()
    pages = await asyncio.to_thread(pages_of, pdf)
    assert [verify_ticket(KEYRING.public_keys, codes[0]).ticket_number
            for _text, codes in pages] == [first, second]

    # one ticket in large, and given to someone else (a wrong address first)
    await card.get_by_test_id("open-ticket").click()
    await expect(page.get_by_test_id("transfer-form")).to_be_visible()
    await look(page, "ticket")
    await page.get_by_label("Their name").fill("Chikondi Banda")
    await page.get_by_label("Their email address").fill("chikondi at example")
    await page.get_by_role("checkbox").check()
    await page.get_by_test_id("transfer").click()
    await expect(page.get_by_test_id("error-email")).to_be_visible()
    await look(page, "transfer-error")
    await page.get_by_label("Their email address").fill("chikondi@example.test")
    await page.get_by_test_id("transfer").click()
    await expect(page.get_by_test_id("transferred")).to_contain_text("chikondi@example.test")
    await expect(page.get_by_test_id("ticket-status")).to_have_text("Transferred")
    await expect(page.get_by_test_id("ticket-qr")).to_have_count(0)
    await look(page, "transferred")
    assert await app[DB].fetchval("SELECT generation FROM tickets WHERE ticket_number = $1",
                                  first) == 2
