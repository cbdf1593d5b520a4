"""The waiting room in real headless Chromium: a guest opens an event whose room is on, is sent
to the queue page, whose script solves the join challenge; the page shows the place and moves on
by itself when the provider speeds the line up; the guest then buys through checkout and the
sandbox gateway. The provider's control page too. axe-core and screenshots on every page."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from storefront.app import create_app
from storefront.room.service import ROOM
from tests.browser import BROWSER_MARKS, check_axe, screenshots
from tests.factories import PASSWORD, Factory
from tests.test_checkout_browser import CARD_OK, check_out, confirmed, pay_by_card

pytestmark = BROWSER_MARKS
pw = pytest.importorskip("playwright.async_api", reason="page tests need the playwright package")
expect = pw.expect
EV = "/api/provider/events"


@pytest.fixture
async def client(settings) -> AsyncIterator[TestClient]:
    """The app with the sandbox gateway on, ticking rooms every 100 ms."""
    fast = {"sandbox": True, "sandbox_settle_ms": 1000, "sandbox_webhook_url": None,
            "sandbox_webhook_backoff_ms": 50, "room_tick_ms": 100}
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
    resp = await client.patch(f"{EV}/{ev['id']}/room", headers=provider.h, json={
        "enabled": True, "rate_per_second": 0.01, "difficulty": 8})
    assert resp.status == 200
    room = client.server.app[ROOM]
    # someone who came first: the room's first admission is theirs
    assert (await room.join(ev["id"], "g:first", "ab" * 16, int(time.time() * 1000) + 60_000,
                            "10.0.0.1", 0)).ok
    assert (await room.status(ev["id"], "g:first")).place == "admitted"  # (or the ticker did)
    return {"event": ev, "package": pkg, "factory": factory, "app": client.server.app,
            "provider": provider}


async def test_a_guest_waits_in_line_then_buys(page, sale, client):
    ev = sale["event"]
    await page.goto(f"/events/{ev['slug']}")
    await expect(page).to_have_url(re.compile(f"/events/{ev['slug']}/queue$"))
    await expect(page.get_by_test_id("room-message")).to_have_text("You are next.")
    await expect(page.get_by_test_id("room-ahead")).to_have_text("0")
    assert await page.get_by_test_id("room-progress").get_attribute("value") == "50"
    await check_axe(page)
    await screenshots(page, "room-queue")
    await page.reload()  # the place is kept
    await expect(page.get_by_test_id("room-message")).to_have_text("You are next.")
    assert (await sale["app"][ROOM].tick(ev["id"])).queued == 1
    # the provider speeds the line up; the page moves on by itself (live updates)
    resp = await client.patch(f"{EV}/{ev['id']}/room", headers=sale["provider"].h,
                              json={"rate_per_second": 100})
    assert resp.status == 200
    await expect(page).to_have_url(re.compile(f"/events/{ev['slug']}$"), timeout=15_000)
    plus = page.get_by_role("button", name=f"One more: {sale['package']['name']}")
    for _ in range(2):
        await plus.click()
    await page.get_by_test_id("continue").click()
    await expect(page).to_have_url(re.compile(r"/holds/H[\w-]+$"))
    await page.get_by_role("link", name="Checkout").click()
    await check_out(page)
    await pay_by_card(page, CARD_OK)
    await confirmed(page, sale)
    figures = await sale["app"][ROOM].tick(ev["id"])
    assert figures.used == 1 and figures.queued == 0


async def test_the_provider_control_page(page, sale):
    provider = sale["provider"]
    await page.goto("/login")
    await page.get_by_label("Email").fill(provider.user["email"])
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_test_id("who")).to_be_visible()
    await page.goto(f"/provider/events/{sale['event']['id']}/room")
    await expect(page.get_by_role("heading", name="Waiting room")).to_be_visible()
    await check_axe(page)
    await screenshots(page, "room-control")
    await page.get_by_test_id("pause").click()
    await expect(page.get_by_test_id("resume")).to_be_visible()
    await expect(page.get_by_test_id("control-state")).to_contain_text("paused")
    await page.get_by_label("Visitors admitted a second").fill("25")
    await page.get_by_test_id("save").click()
    await expect(page.get_by_label("Visitors admitted a second")).to_have_value("25.0")
