"""The buying pages over HTTP (storefront/buy/pages.py): who may see a basket or an order, a
checkout form refused in words with nothing changed, a replayed form that never pays twice, and
a hold that lapsed. The browser tests (test_checkout_browser.py) walk the happy paths."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from storefront.app import create_app
from storefront.appkeys import EVENT_CACHE, INVENTORY, ORDERS
from tests.factories import Factory
from tests.inventory_helpers import lapse
from tests.sandbox_helpers import csrf

EV = "/api/provider/events"
FORM = {"billing_name": "Thoko Phiri", "billing_email": "thoko@example.test",
        "billing_phone": "+265 888 123 456", "same_for_all": "on", "accept_terms": "on",
        "method": "card"}


@pytest.fixture
async def shop(settings) -> AsyncIterator[TestClient]:
    fast = {"sandbox": True, "sandbox_settle_ms": 100, "sandbox_webhook_url": None}
    app = create_app(msgspec.structs.replace(settings, **fast))
    async with TestClient(TestServer(app)) as client:
        yield client


async def on_sale(client: TestClient, **event) -> tuple[dict, dict]:
    factory = Factory(client)
    provider = await factory.user("provider")
    ev = await factory.event(provider, service_fee=500, **event)
    pkg = await factory.package(provider, ev["id"], capacity=10, price=25_000)
    assert (await client.post(f"{EV}/{ev['id']}/publish", headers=provider.h)).status == 200
    return ev, pkg


async def hold(client: TestClient, ev: dict, pkg: dict, quantity: int = 2) -> dict:
    """A guest's hold, made as the event page does (the client's cookies are the guest's)."""
    resp = await client.post(f"/api/events/{ev['id']}/holds",
                             json={"items": [{"package_id": pkg["id"], "quantity": quantity}]})
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def form_token(client: TestClient, path: str) -> str:
    resp = await client.get(path)
    assert resp.status == 200, await resp.text()
    return csrf(await resp.text())


async def available(client: TestClient, ev: dict, pkg: dict) -> int:
    return (await client.server.app[INVENTORY].availability(ev["id"])).packages[pkg["id"]].available


def message(page: str, testid: str) -> str:
    match = re.search(rf'data-testid="{testid}"[^>]*>([^<]+)<', page)
    assert match, f"no {testid} on the page"
    return match.group(1).strip()


async def test_the_basket_shows_lines_fees_total_and_the_servers_clock(shop: TestClient):
    ev, pkg = await on_sale(shop)
    h = await hold(shop, ev, pkg)
    resp = await shop.get(f"/holds/{h['id']}")
    page = await resp.text()
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
    assert "2 × " in page and message(page, "total") == "MWK 510.00"  # 2 × 250 + 2 × 5 fee
    assert message(page, "fees") == "MWK 10.00"
    assert f'data-expires="{h["expires_at"]}"'.replace("Z", "+00:00") in page
    # Remove gives the hold back and goes to the event page
    token = csrf(page)
    resp = await shop.post(f"/holds/{h['id']}/release", data={"csrf_token": token},
                           allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == f"/events/{ev['slug']}"
    assert await available(shop, ev, pkg) == 10


async def test_someone_elses_basket_and_order_are_not_found(shop: TestClient, settings):
    ev, pkg = await on_sale(shop)
    h = await hold(shop, ev, pkg)
    token = await form_token(shop, f"/holds/{h['id']}/checkout")
    resp = await shop.post(f"/holds/{h['id']}/checkout", data={"csrf_token": token, **FORM},
                           allow_redirects=False)
    assert resp.status == 303
    draft = await shop.server.app[ORDERS].draft(ev["id"], h["id"])
    shop.session.cookie_jar.clear()  # someone else, in another browser
    for path in (f"/holds/{h['id']}", f"/holds/{h['id']}/checkout",
                 f"/orders/{draft.order_number}", f"/orders/{draft.order_number}/payment",
                 f"/orders/{draft.order_number}?t={'0' * 32}"):
        resp = await shop.get(path)
        assert resp.status == 404, path
        assert "Page not found" in (text := await resp.text()) or "not here" in text
    assert "Back to" in await (await shop.get(f"/holds/{h['id']}")).text()  # to the event


@pytest.mark.parametrize("change, field, words, status", [
    ({"same_for_all": "", "attendee_0_name": "Ada", "attendee_0_email": "ada@example.test"},
     "attendees", "Give one attendee per ticket (2 tickets).", 422),
    ({"billing_email": "not-an-email"}, "billing_email",
     "Enter an email address like name@example.com.", 422),
    ({"billing_phone": "call me"}, "billing_phone", "Enter a phone number like +265 991 234 567.", 422),
    ({"accept_terms": ""}, "accept_terms", "Accept the terms to continue.", 422),
    ({"method": "mobile_money", "network": ""}, "network", "Choose your mobile money network.", 422),
    ({"csrf_token": ""}, None, "CSRF token is missing or stale", 403),
])
async def test_a_bad_checkout_is_refused_in_words_and_changes_nothing(shop: TestClient, change,
                                                                      field, words, status):
    ev, pkg = await on_sale(shop)
    h = await hold(shop, ev, pkg)
    token = await form_token(shop, f"/holds/{h['id']}/checkout")
    data = {"csrf_token": token, **FORM, **change}
    resp = await shop.post(f"/holds/{h['id']}/checkout", data={k: v for k, v in data.items() if v})
    page = await resp.text()
    assert resp.status == status, page
    if field:
        assert message(page, f"error-{field}") == words
        assert message(page, "form-error").startswith("Please correct the field")
        assert 'value="Thoko Phiri"' in page  # what was typed is kept
    else:
        assert words in page
    assert await shop.server.app[ORDERS].draft(ev["id"], h["id"]) is None
    assert await available(shop, ev, pkg) == 8  # still held, nothing paid
    assert (await shop.get(f"/holds/{h['id']}")).status == 200


async def test_a_replayed_form_or_payment_page_never_starts_a_second_payment(shop: TestClient):
    ev, pkg = await on_sale(shop)
    h = await hold(shop, ev, pkg)
    token = await form_token(shop, f"/holds/{h['id']}/checkout")
    data = {"csrf_token": token, **FORM}
    first = await shop.post(f"/holds/{h['id']}/checkout", data=data, allow_redirects=False)
    assert first.status == 303 and urlsplit(first.headers["Location"]).path.startswith("/sandbox/pay/")
    draft = await shop.server.app[ORDERS].draft(ev["id"], h["id"])
    status_page = f"/orders/{draft.order_number}/payment"
    # the same form again (back button, double click): the payment under way, not another
    again = await shop.post(f"/holds/{h['id']}/checkout", data=data, allow_redirects=False)
    assert again.status == 303 and again.headers["Location"] == status_page
    assert (await shop.get(f"/holds/{h['id']}/checkout", allow_redirects=False)).headers[
        "Location"] == status_page
    # the payment page shows the attempt; a retry form posted while it runs changes nothing
    resp = await shop.get(status_page)
    assert resp.status == 200 and "Waiting for your payment" in await resp.text()
    retry = await shop.post(status_page, data={"csrf_token": token, "method": "card"},
                            allow_redirects=False)
    assert retry.status == 303 and retry.headers["Location"] == status_page
    assert len((await shop.server.app[ORDERS].draft(ev["id"], h["id"])).payments) == 1
    # nor can the order be cancelled under a payment: said in words, the tickets stay held
    resp = await shop.post(f"/orders/{draft.order_number}/cancel", data={"csrf_token": token})
    assert resp.status == 409 and "A payment for this order is under way" in await resp.text()
    assert await available(shop, ev, pkg) == 8


async def test_a_lapsed_hold_says_its_tickets_were_released(shop: TestClient):
    ev, pkg = await on_sale(shop)
    h = await hold(shop, ev, pkg)
    token = await form_token(shop, f"/holds/{h['id']}/checkout")
    await lapse(shop.server.app[INVENTORY], ev["id"], h["id"])
    resp = await shop.post(f"/holds/{h['id']}/checkout", data={"csrf_token": token, **FORM})
    page = await resp.text()
    assert resp.status == 410 and "<h1 id=\"notice-heading\">Your tickets were released</h1>" in page
    assert message(page, "notice-message").startswith("The time to pay ran out")
    assert f'href="/events/{ev["slug"]}"' in page
    assert (await shop.get(f"/holds/{h['id']}")).status == 410
    assert await available(shop, ev, pkg) == 10
    assert await shop.server.app[ORDERS].draft(ev["id"], h["id"]) is None


async def test_a_guest_is_asked_to_log_in_where_the_event_takes_no_guests(shop: TestClient):
    factory = Factory(shop)
    provider = await factory.user("provider")
    ev = await factory.event(provider)
    pkg = await factory.package(provider, ev["id"], capacity=10, price=25_000)
    assert (await shop.post(f"{EV}/{ev['id']}/publish", headers=provider.h)).status == 200
    h = await hold(shop, ev, pkg)
    resp = await shop.patch(f"{EV}/{ev['id']}", json={"allow_guest_checkout": False},
                            headers=provider.h)
    assert resp.status == 200, await resp.text()
    shop.server.app[EVENT_CACHE].forget(ev["id"])
    resp = await shop.get(f"/holds/{h['id']}/checkout")
    page = await resp.text()
    assert resp.status == 401 and "Log in to check out" in page
    assert f'href="/login?next=%2Fholds%2F{h["id"]}%2Fcheckout"' in page
