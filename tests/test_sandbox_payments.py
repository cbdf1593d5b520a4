"""The sandbox gateway end to end over real HTTP: the adapter creates payments on the sandbox
served by the app, the hosted pages are driven with plain form posts, webhooks are captured by a
stand-in for Kwika's endpoint and read with the adapter's parse_webhook. Real Redis, no mocks."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import aiohttp
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, unused_port

from engine.payments.base import GatewayError
from engine.payments.registry import UnknownGateway, configured
from engine.payments.sandbox import SandboxGateway
from engine.settings import Settings
from tests.sandbox_helpers import (  # noqa: F401 - the fixtures are used by name
    Sandbox,
    StartSandbox,
    csrf,
    hook_fixture,
    meta_refresh,
    start_sandbox_fixture,
)


@pytest.fixture
async def sandbox(start_sandbox: StartSandbox) -> Sandbox:
    return await start_sandbox()


def page_path(url: str) -> str:
    return urlsplit(url).path


def back_url(sandbox: Sandbox, reference: str, status: str) -> str:
    return f"{sandbox.client.make_url('/test/return')}?reference={reference}&status={status}"


# --- cards -----------------------------------------------------------------------------------
@pytest.mark.parametrize("card, state, reason", [
    ("4242 4242 4242 4242", "succeeded", None),
    ("4000 0000 0000 0002", "failed", "the card was declined"),
    ("4000000000009995", "failed", "insufficient funds"),
])
async def test_a_card_payment_ends_as_its_test_card_says(sandbox: Sandbox, card, state, reason):
    req = sandbox.request()
    start = await sandbox.gateway.create_payment(req)
    assert start.gateway_ref.startswith("pay_") and start.action.kind == "redirect"
    assert start.action.url == str(sandbox.client.make_url(f"/sandbox/pay/{start.gateway_ref}"))

    status, page = await sandbox.get(start.action.url)
    assert status == 200
    assert "Sandbox — no real money" in page and "MWK 60,000.00" in page and "Kwika" in page
    for number in ("4242 4242 4242 4242", "4000 0000 0000 0002", "4000 0000 0000 9995",
                   "4000 0000 0000 3220"):
        assert number in page

    resp = await sandbox.submit(start.action.url, "card", card_number=card, expiry="12/34",
                                cvc="123")
    assert resp.status == 303
    assert resp.headers["Location"] == page_path(start.action.url) + "?done=1"
    status, page = await sandbox.get(resp.headers["Location"])
    assert f'data-status="{state}"' in page
    assert meta_refresh(page) == back_url(sandbox, req.reference, state)  # back to the merchant

    got = await sandbox.gateway.fetch_status(req.reference, start.gateway_ref)
    assert (got.reference, got.gateway_ref, got.state, got.reason) == (
        req.reference, start.gateway_ref, state, reason)
    assert (got.amount, got.currency, got.method) == (6_000_000, "MWK", "card")

    pending, final = [sandbox.parse(d) for d in await sandbox.hook.wait_for(req.reference, 2)]
    assert (pending.status.state, final.status.state) == ("pending", state)
    assert final.status.reason == reason and final.status.amount == 6_000_000
    assert pending.event_id != final.event_id and final.refund is None


@pytest.mark.parametrize("outcome, state, reason", [
    ("pass", "succeeded", None), ("fail", "failed", "3-D Secure authentication failed")])
async def test_a_3ds_card_asks_for_a_challenge_first(sandbox: Sandbox, outcome, state, reason):
    req = sandbox.request()
    start = await sandbox.gateway.create_payment(req)
    resp = await sandbox.submit(start.action.url, "card", card_number="4000000000003220",
                                expiry="01/40", cvc="999")
    assert resp.status == 303 and resp.headers["Location"] == page_path(start.action.url)
    _, page = await sandbox.get(start.action.url)
    assert "Confirm it is you" in page and "Complete authentication" in page
    assert (await sandbox.gateway.fetch_status(req.reference, start.gateway_ref)).state == "pending"

    resp = await sandbox.submit(start.action.url, "challenge", outcome=outcome)
    assert resp.headers["Location"].endswith("?done=1")
    got = await sandbox.gateway.fetch_status(req.reference, start.gateway_ref)
    assert (got.state, got.reason) == (state, reason)
    _, final = await sandbox.hook.wait_for(req.reference, 2)
    assert sandbox.parse(final).status.state == state


async def test_a_finished_payment_page_shows_its_state_and_never_charges_again(sandbox: Sandbox):
    req = sandbox.request()
    start = await sandbox.gateway.create_payment(req)
    _, form_page = await sandbox.get(start.action.url)
    resp = await sandbox.submit(start.action.url, "card", card_number="4242424242424242",
                                expiry="12/34", cvc="123")
    assert resp.headers["Location"].endswith("?done=1")

    # the same form again (a back button, a replay), and the failing card after it
    for card in ("4242424242424242", "4000000000000002"):
        again = await sandbox.submit(start.action.url, "card", token=csrf(form_page),
                                     card_number=card, expiry="12/34", cvc="123")
        assert again.status == 303 and again.headers["Location"] == page_path(start.action.url)
    status, page = await sandbox.get(start.action.url)  # a replayed page: no forwarding
    assert status == 200 and "Payment successful" in page and meta_refresh(page) is None
    assert 'name="card_number"' not in page
    assert (await sandbox.gateway.fetch_status(req.reference, start.gateway_ref)).state == "succeeded"
    assert len(await sandbox.sandbox_keys("webhook")) == 2  # pending, succeeded: nothing more


async def test_a_double_click_charges_once(sandbox: Sandbox):
    req = sandbox.request()
    start = await sandbox.gateway.create_payment(req)
    # one form on the screen, submitted eight times at once (a page read after the first click
    # landed has no form left: reading it inside each click made this test flaky)
    token = csrf((await sandbox.get(start.action.url))[1])
    answers = await asyncio.gather(*[
        sandbox.submit(start.action.url, "card", token, card_number="4242424242424242",
                       expiry="12/34", cvc="123") for _ in range(8)])
    assert sorted(r.headers["Location"].endswith("?done=1") for r in answers).count(True) == 1
    assert len(await sandbox.sandbox_keys("webhook")) == 2


@pytest.mark.parametrize("fields, field, words", [
    ({"card_number": "4111 1111 1111 1111"}, "card_number", "Use one of the test cards"),
    ({"card_number": ""}, "card_number", "Enter a card number"),
    ({"expiry": "13/40"}, "expiry", "MM/YY"),
    ({"expiry": "01/20"}, "expiry", "expired"),
    ({"cvc": "12"}, "cvc", "3 or 4 digits"),
])
async def test_a_bad_card_form_is_refused_in_words_and_changes_nothing(sandbox: Sandbox, fields,
                                                                       field, words):
    req = sandbox.request()
    start = await sandbox.gateway.create_payment(req)
    form = {"card_number": "4242424242424242", "expiry": "12/34", "cvc": "123"} | fields
    resp = await sandbox.submit(start.action.url, "card", **form)
    assert resp.status == 422
    page = await resp.text()
    assert f'data-testid="error-{field}"' in page and words in page
    assert 'aria-invalid="true"' in page
    assert (await sandbox.gateway.fetch_status(req.reference, start.gateway_ref)).state == "pending"
    assert len(await sandbox.sandbox_keys("webhook")) == 1  # only the creation's pending


async def test_a_form_without_its_csrf_token_is_refused(sandbox: Sandbox):
    req = sandbox.request()
    start = await sandbox.gateway.create_payment(req)
    await sandbox.get(start.action.url)  # the CSRF cookie is set; the token is not sent
    resp = await sandbox.client.post(page_path(start.action.url) + "/card", allow_redirects=False,
                                     data={"card_number": "4242424242424242", "expiry": "12/34",
                                           "cvc": "123"})
    assert resp.status == 403
    assert (await sandbox.gateway.fetch_status(req.reference, start.gateway_ref)).state == "pending"


async def test_cancel_on_the_hosted_page_fails_the_payment(sandbox: Sandbox):
    req = sandbox.request()
    start = await sandbox.gateway.create_payment(req)
    resp = await sandbox.submit(start.action.url, "cancel")
    _, page = await sandbox.get(resp.headers["Location"])
    assert meta_refresh(page) == back_url(sandbox, req.reference, "failed")
    got = await sandbox.gateway.fetch_status(req.reference, start.gateway_ref)
    assert (got.state, got.reason) == ("failed", "the customer cancelled")


async def test_an_unknown_payment_page_is_a_404_page(sandbox: Sandbox):
    status, page = await sandbox.get("/sandbox/pay/pay_nope")
    assert status == 404 and "no sandbox payment here" in page


# --- bank transfer, USSD, mobile money ---------------------------------------------------------
@pytest.mark.parametrize("method, words", [("bank_transfer", "Sandbox Bank"),
                                           ("ussd", "*000*6000000*")])
async def test_bank_transfer_and_ussd_complete_after_i_have_paid(sandbox: Sandbox, method, words):
    req = sandbox.request(method)
    start = await sandbox.gateway.create_payment(req)
    assert start.action.kind == "redirect"
    _, page = await sandbox.get(start.action.url)
    assert words in page and "I have paid" in page

    resp = await sandbox.submit(start.action.url, "paid")
    assert resp.headers["Location"] == page_path(start.action.url)
    _, page = await sandbox.get(start.action.url)
    assert "Checking for your payment" in page and "data-poll=" in page

    _, final = await sandbox.hook.wait_for(req.reference, 2)
    assert sandbox.parse(final).status.state == "succeeded"
    state = await (await sandbox.client.get(page_path(start.action.url) + "/status")).json()
    assert state == {"status": "succeeded", "stage": "done", "final": True,
                     "url": page_path(start.action.url) + "?done=1"}


@pytest.mark.parametrize("phone, state, reason", [
    ("+265991234567", "succeeded", None),
    ("+265990000000", "failed", "the customer declined"),
])
async def test_mobile_money_is_approved_or_declined_on_the_phone(sandbox: Sandbox, phone, state,
                                                                 reason):
    req = sandbox.request("mobile_money", phone=phone, network="airtel")
    start = await sandbox.gateway.create_payment(req)
    assert start.action.kind == "await_push" and phone in (start.action.message or "")
    assert start.action.url == str(sandbox.client.make_url(f"/sandbox/pay/{start.gateway_ref}"))
    _, page = await sandbox.get(start.action.url)
    assert "Approve on your phone" in page and "Airtel Money" in page

    pending, final = [sandbox.parse(d) for d in await sandbox.hook.wait_for(req.reference, 2)]
    assert (pending.status.state, final.status.state, final.status.reason) == (
        "pending", state, reason)
    assert final.status.method == "mobile_money"
    got = await sandbox.gateway.fetch_status(req.reference, start.gateway_ref)
    assert (got.state, got.reason) == (state, reason)


async def test_an_unanswered_push_stays_pending_until_it_times_out(start_sandbox: StartSandbox):
    sandbox = await start_sandbox(sandbox_settle_ms=50, sandbox_push_timeout_ms=1500)
    silent = sandbox.request("mobile_money", phone="+265881111111", network="tnm")
    answered = sandbox.request("mobile_money")
    silent_start = await sandbox.gateway.create_payment(silent)
    await sandbox.gateway.create_payment(answered)

    await sandbox.hook.wait_for(answered.reference, 2)  # the settle delay has passed ...
    got = await sandbox.gateway.fetch_status(silent.reference, silent_start.gateway_ref)
    assert got.state == "pending"  # ... and the silent phone is still pending
    _, final = await sandbox.hook.wait_for(silent.reference, 2)
    assert (sandbox.parse(final).status.state, sandbox.parse(final).status.reason) == (
        "failed", "timed out")


# --- status, refunds ---------------------------------------------------------------------------
async def paid(sandbox: Sandbox, amount: int = 6_000_000) -> tuple[str, str]:
    req = sandbox.request(amount=amount)
    start = await sandbox.gateway.create_payment(req)
    await sandbox.submit(start.action.url, "card", card_number="4242424242424242",
                         expiry="12/34", cvc="123")
    return req.reference, start.gateway_ref


async def test_status_by_reference_when_the_gateway_ref_was_lost(sandbox: Sandbox):
    reference, gateway_ref = await paid(sandbox)
    got = await sandbox.gateway.fetch_status(reference, "")
    assert (got.gateway_ref, got.state) == (gateway_ref, "succeeded")
    with pytest.raises(GatewayError) as info:
        await sandbox.gateway.fetch_status("ORD-never-1", "")
    assert (info.value.code, info.value.retryable) == ("not_found", False)
    with pytest.raises(GatewayError) as info:
        await sandbox.gateway.fetch_status(reference, "pay_unknown")
    assert (info.value.code, info.value.retryable) == ("not_found", False)
    with pytest.raises(GatewayError) as info:  # another payment's id
        await sandbox.gateway.fetch_status("ORD-other-1", gateway_ref)
    assert info.value.code == "reference_mismatch"


async def test_refunds_give_back_at_most_what_was_paid(sandbox: Sandbox):
    reference, gateway_ref = await paid(sandbox, amount=10_000)
    first = await sandbox.gateway.refund(gateway_ref, 2_500, "one ticket returned")
    assert (first.gateway_ref, first.amount, first.state) == (gateway_ref, 2_500, "succeeded")
    assert first.refund_ref.startswith("re_")
    with pytest.raises(GatewayError) as info:
        await sandbox.gateway.refund(gateway_ref, 7_501, "too much")
    assert (info.value.code, info.value.retryable) == ("not_refundable", False)
    assert "7500" in info.value.message
    rest = await sandbox.gateway.refund(gateway_ref, 7_500, "the rest")
    assert rest.amount == 7_500 and rest.refund_ref != first.refund_ref
    with pytest.raises(GatewayError, match="0 \\(minor units\\) is left"):
        await sandbox.gateway.refund(gateway_ref, 1, "nothing left")

    resp = await sandbox.client.get(f"/sandbox/api/v1/payments/{gateway_ref}", headers={
        "Authorization": f"Bearer {sandbox.settings.sandbox_api_key}"})
    body = await resp.json()
    assert body["status"] == "succeeded" and body["refunded"] == 10_000
    assert [r["amount"] for r in body["refunds"]] == [2_500, 7_500]

    deliveries = await sandbox.hook.wait_for(reference, 4)
    refunds = [e.refund for e in map(sandbox.parse, deliveries) if e.refund is not None]
    assert sorted((r.refund_ref, r.amount) for r in refunds) == sorted(
        [(first.refund_ref, 2_500), (rest.refund_ref, 7_500)])
    assert {d.event.type for d in deliveries} == {"payment.pending", "payment.succeeded",
                                                  "refund.succeeded"}


async def test_only_a_succeeded_payment_can_be_refunded(sandbox: Sandbox):
    start = await sandbox.gateway.create_payment(sandbox.request())
    with pytest.raises(GatewayError) as info:
        await sandbox.gateway.refund(start.gateway_ref, 100, "not paid yet")
    assert (info.value.code, info.value.retryable) == ("not_refundable", False)
    with pytest.raises(GatewayError) as info:
        await sandbox.gateway.refund("pay_unknown", 100, "no such payment")
    assert info.value.code == "not_found"


# --- the adapter's errors ------------------------------------------------------------------------
async def test_an_unreachable_gateway_is_worth_retrying(sandbox: Sandbox):
    async with aiohttp.ClientSession() as session:
        gone = SandboxGateway(session, f"http://127.0.0.1:{unused_port()}/sandbox", "sk", ["s"])
        with pytest.raises(GatewayError) as info:
            await gone.create_payment(sandbox.request())
    assert (info.value.code, info.value.retryable) == ("unreachable", True)


@pytest.mark.parametrize("status, retryable", [(500, True), (503, True), (429, True),
                                               (400, False), (404, False)])
async def test_a_gateway_error_answer_says_whether_to_retry(sandbox: Sandbox, status, retryable):
    async def answer(request: web.Request) -> web.Response:
        body = {"error": "boom", "message": f"answered {status}", "fields": {}}
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        other = SandboxGateway(session, str(server.make_url("/sandbox")), "sk", ["s"])
        with pytest.raises(GatewayError) as info:
            await other.fetch_status("ORD-1-a-1", "pay_1")
    assert (info.value.retryable, info.value.message) == (retryable, f"answered {status}")


async def test_a_slow_gateway_times_out_as_retryable(sandbox: Sandbox):
    never = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await never.wait()
        return web.Response()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hang)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        slow = SandboxGateway(session, str(server.make_url("/sandbox")), "sk", ["s"], timeout=0.2)
        with pytest.raises(GatewayError) as info:
            await slow.create_payment(sandbox.request())
        never.set()
    assert info.value.retryable


async def test_a_wrong_key_is_refused_and_not_retryable(sandbox: Sandbox):
    async with aiohttp.ClientSession() as session:
        wrong = SandboxGateway(session, sandbox.gateway.base_url, "sk_wrong", ["s"])
        with pytest.raises(GatewayError) as info:
            await wrong.create_payment(sandbox.request())
    assert (info.value.code, info.value.retryable) == ("unauthenticated", False)
    assert await sandbox.sandbox_keys("payment") == []


# --- wiring ---------------------------------------------------------------------------------------
async def test_the_sandbox_is_off_unless_turned_on(client: TestClient, settings: Settings):
    assert (await client.get("/sandbox/pay/pay_1")).status == 404
    assert (await client.post("/sandbox/api/v1/payments", json={})).status in (401, 404)
    async with aiohttp.ClientSession() as session:
        gateways = configured(settings, session, self_url="http://127.0.0.1:1")
        assert gateways.names() == () and "sandbox" not in gateways
        with pytest.raises(UnknownGateway):
            gateways.get("sandbox")


async def test_readyz_watches_the_sandbox_dispatcher(sandbox: Sandbox):
    resp = await sandbox.client.get("/readyz")
    assert resp.status == 200 and (await resp.json())["checks"]["sandbox"] == "ok"


async def test_the_registry_points_the_sandbox_at_this_app_unless_told(settings: Settings):
    on = msgspec.structs.replace(settings, sandbox=True)
    async with aiohttp.ClientSession() as session:
        here = configured(on, session, self_url="http://127.0.0.1:8123").get("sandbox")
        assert here.base_url == "http://127.0.0.1:8123/sandbox"  # type: ignore[attr-defined]
        elsewhere = configured(msgspec.structs.replace(on, sandbox_url="https://pay.example/sb"),
                               session, self_url="http://127.0.0.1:8123").get("sandbox")
        assert elsewhere.base_url == "https://pay.example/sb"  # type: ignore[attr-defined]
        assert "sk_sandbox_" not in repr(here)
