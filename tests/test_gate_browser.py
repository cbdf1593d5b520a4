"""The gate in real headless Chromium: an invited staff member accepts, opens the scanner, scans
with a keyboard-wedge scanner (the code typed into the field and Enter) and sees green, amber and
red with the running count; the network drops and the page keeps checking codes against its own
list (Ed25519 verified in the browser), then syncs its check-ins and lists the conflict. Every
page passes axe-core and is photographed at 1280 and 390 px under test-artifacts/screenshots/."""
# ruff: noqa: F811  (fixtures imported by name)

from __future__ import annotations

import msgspec
import pytest

from storefront.appkeys import KEYS, REDIS
from tests.browser import BROWSER_MARKS, check_axe, screenshots
from tests.factories import Factory
from tests.gate_helpers import client, payload, sell_event  # noqa: F401

pytestmark = BROWSER_MARKS
pw = pytest.importorskip("playwright.async_api", reason="page tests need the playwright package")
expect = pw.expect


async def wedge(page, code: str) -> None:
    """What a keyboard-wedge barcode scanner does: types the code into the focused field, Enter."""
    await page.get_by_test_id("code").focus()
    await page.keyboard.type(code)
    await page.keyboard.press("Enter")


async def outcome(page, result: str) -> None:
    await expect(page.get_by_test_id("result")).to_have_attribute("data-outcome", result)


async def test_staff_accept_scan_and_keep_scanning_offline(page, client, console):
    console.allow(r"ERR_INTERNET_DISCONNECTED")  # the page's requests while it is offline
    app = client.server.app
    factory = Factory(client)
    sold = await sell_event(client, factory, tickets=5)
    made = await (await client.post("/api/provider/staff/invites", json={
        "email": "door@example.test", "event_ids": [sold.event_id]}, headers=sold.provider.h)).json()
    key = app[KEYS].event(sold.event_id, "tickets")
    refunded = msgspec.json.decode(await app[REDIS].hget(key, sold.tickets[4]))
    await app[REDIS].hset(key, sold.tickets[4], msgspec.json.encode({**refunded, "s": "refunded"}))

    await page.goto(f"/staff/accept?token={made['token']}")
    await check_axe(page)
    await screenshots(page, "gate-accept")
    await page.get_by_label("Your name").fill("Chikondi Banda")
    await page.get_by_label("Choose a password").fill("a long gate password")
    await page.get_by_role("button", name="Accept and open the gate").click()
    await expect(page.get_by_test_id("gate-events")).to_be_visible()
    assert page.url.endswith("/gate")
    await check_axe(page)
    await screenshots(page, "gate-events")
    await page.get_by_test_id("gate-event").click()
    await expect(page.locator("[data-gate]")).to_have_attribute("data-listed", "1")

    await page.get_by_test_id("gate-name").fill("North")
    await wedge(page, sold.code(0))
    await outcome(page, "admitted")
    await expect(page.get_by_test_id("result")).to_contain_text("Come in")
    await expect(page.get_by_test_id("result")).to_contain_text("Guest 0")
    await expect(page.get_by_test_id("count")).to_contain_text("1 of 5")
    await check_axe(page)
    await screenshots(page, "gate-admitted")
    await wedge(page, sold.code(0))
    await outcome(page, "repeat")
    await wedge(page, sold.tickets[4])  # typed by hand
    await outcome(page, "refunded")
    await check_axe(page)
    await screenshots(page, "gate-refused")
    await expect(page.get_by_test_id("code")).to_be_focused()

    # manual search and check-in
    await page.get_by_test_id("search").fill("guest 1")
    await page.get_by_test_id("search").press("Enter")
    await page.get_by_test_id("found").get_by_role("button", name="Check in").click()
    await outcome(page, "admitted")

    # the network drops: the page goes on with its list
    await page.context.set_offline(True)
    # meanwhile ticket 3 comes in at another gate; this device's list does not know it
    await client.post("/api/scan", json={"event_id": sold.event_id, "code": sold.code(3),
                                         "gate": "South"}, headers=sold.provider.h)
    await wedge(page, sold.code(2))
    await outcome(page, "admitted")
    await expect(page.get_by_test_id("result")).to_contain_text("(offline)")
    await expect(page.get_by_test_id("net")).to_contain_text("Offline")
    await wedge(page, sold.code(3))
    await outcome(page, "admitted")
    await wedge(page, sold.code(2))
    await outcome(page, "repeat")
    forged = payload(sold.tickets[1]).rpartition(".")[0] + "." + "A" * 102 + "Q"
    await wedge(page, forged)
    await outcome(page, "forged")
    await expect(page.get_by_test_id("net")).to_contain_text("2 scans waiting to sync")
    await screenshots(page, "gate-offline")
    assert msgspec.json.decode(await app[REDIS].hget(key, sold.tickets[2]))["s"] == "valid"

    # back online: the check-ins are synced, the conflict listed
    await page.context.set_offline(False)
    await expect(page.get_by_test_id("net")).to_contain_text("no scans waiting")
    entry = msgspec.json.decode(await app[REDIS].hget(key, sold.tickets[2]))
    assert (entry["s"], entry["gate"]) == ("used", "North")
    await expect(page.get_by_test_id("conflicts")).to_contain_text(sold.tickets[3])
    await expect(page.get_by_test_id("conflicts")).to_contain_text("South")
    await expect(page.get_by_test_id("count")).to_contain_text("4 of 5")
    await check_axe(page)
    await screenshots(page, "gate-synced")


async def test_a_scanner_page_of_an_event_one_may_not_scan_is_refused(page, client):
    factory = Factory(client)
    sold = await sell_event(client, factory, tickets=1)
    buyer = await factory.user()
    await page.context.set_extra_http_headers({"Authorization": f"Bearer {buyer.token}"})
    answer = await page.goto(f"/gate/{sold.event_id}")
    assert answer.status == 404
    answer = await page.goto("/gate")
    assert answer.status == 200
    await expect(page.get_by_test_id("no-gate-events")).to_be_visible()


async def test_an_offline_gate_queues_only_codes_the_server_reads(page, client, console):
    """A holder alters their QR so the browser's check still passes but the server's strict
    reading does not (the signature's unused last bits set; a typed number with a leading zero).
    The offline page must refuse them: queued, they made every sync of the device a 422, so its
    genuine check-ins never reached the server and those tickets could come in again elsewhere."""
    console.allow(r"ERR_INTERNET_DISCONNECTED")
    app = client.server.app
    sold = await sell_event(client, Factory(client), tickets=3)
    key = app[KEYS].event(sold.event_id, "tickets")
    await page.context.set_extra_http_headers({"Authorization": f"Bearer {sold.provider.token}"})
    await page.goto(f"/gate/{sold.event_id}")
    await expect(page.locator("[data-gate]")).to_have_attribute("data-listed", "1")
    await page.get_by_test_id("gate-name").fill("North")
    await page.context.set_offline(True)
    code = sold.code(0)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    altered = code[:-1] + alphabet[alphabet.index(code[-1]) ^ 1]  # same 64 signature bytes
    await wedge(page, altered)
    await expect(page.get_by_test_id("result")).not_to_have_attribute("data-outcome", "admitted")
    await wedge(page, sold.tickets[1].replace(f"TKT-{sold.event_id}-", f"TKT-0{sold.event_id}-"))
    await expect(page.get_by_test_id("result")).not_to_have_attribute("data-outcome", "admitted")
    await wedge(page, sold.code(2))
    await outcome(page, "admitted")
    await expect(page.get_by_test_id("net")).to_contain_text("1 scan waiting to sync")
    await page.context.set_offline(False)
    await expect(page.get_by_test_id("net")).to_contain_text("no scans waiting")
    assert msgspec.json.decode(await app[REDIS].hget(key, sold.tickets[2]))["s"] == "used"
    for number in sold.tickets[:2]:
        assert msgspec.json.decode(await app[REDIS].hget(key, number))["s"] == "valid"
