"""The sandbox's webhook deliveries: signed like a real gateway's, retried, and the test modes
(delay, duplicates, reordering). A small server stands in for Kwika's webhook endpoint and reads
each delivery with the adapter's parse_webhook, as the real endpoint will."""

from __future__ import annotations

import time

import pytest
from aiohttp.test_utils import unused_port

from engine.keys import Keys
from engine.payments import signing
from storefront.appkeys import REDIS
from tests.sandbox_helpers import (  # noqa: F401 - the fixtures are used by name
    Hook,
    Sandbox,
    StartSandbox,
    eventually,
    hook_fixture,
    start_sandbox_fixture,
)


async def pay(sandbox: Sandbox, card: str = "4242424242424242") -> str:
    """A card payment through the hosted page; its reference."""
    req = sandbox.request()
    begun = await sandbox.gateway.create_payment(req)
    resp = await sandbox.submit(begun.action.url, "card", card_number=card, expiry="12/34",
                                cvc="123")
    assert resp.status == 303
    return req.reference


async def outbox_empty(sandbox: Sandbox) -> None:
    """Wait until nothing waits in the sandbox's outbox (a delivery in flight may still be)."""
    rds, outbox = sandbox.client.server.app[REDIS], Keys(sandbox.settings.redis_prefix).sandbox_outbox()

    async def empty() -> bool:
        return await rds.zcard(outbox) == 0

    await eventually(empty)


async def test_every_event_is_signed_and_says_what_changed(start_sandbox: StartSandbox):
    sandbox = await start_sandbox()
    reference = await pay(sandbox)
    pending, succeeded = await sandbox.hook.wait_for(reference, 2)
    for delivery in (pending, succeeded):
        header = delivery.headers["Kwika-Signature"]
        sent_at = signing.verify(header, delivery.body, sandbox.settings.sandbox_webhook_secrets,
                                 time.time())
        assert abs(sent_at - time.time()) < 60
        assert delivery.headers["Content-Type"] == "application/json"
        # signed with the sandbox's secret only: another secret does not verify it
        with pytest.raises(signing.BadSignature):
            signing.verify(header, delivery.body, ["whsec_other"], time.time())
    assert [d.event.type for d in (pending, succeeded)] == ["payment.pending",
                                                            "payment.succeeded"]
    event = succeeded.event
    assert event.id.startswith("evt_") and event.id != pending.event.id
    assert isinstance(event.created, int) and abs(event.created - time.time()) < 60
    assert (event.data.reference, event.data.amount, event.data.currency, event.data.status,
            event.data.method, event.data.failure_reason) == (
        reference, 6_000_000, "MWK", "succeeded", "card", None)
    parsed = sandbox.parse(succeeded)
    assert (parsed.gateway, parsed.event_id, parsed.status.state) == (
        "sandbox", event.id, "succeeded")


async def test_webhooks_go_to_the_address_the_app_is_served_on(start_sandbox: StartSandbox):
    sandbox = await start_sandbox(sandbox_webhook_url=None)  # the hook listens inside the app
    reference = await pay(sandbox, card="4000000000000002")
    _, failed = await sandbox.hook.wait_for(reference, 2)
    assert failed.headers["Host"] == f"127.0.0.1:{sandbox.client.port}"
    assert sandbox.parse(failed).status.reason == "the card was declined"


async def test_duplicates_share_their_event_id(start_sandbox: StartSandbox):
    sandbox = await start_sandbox(sandbox_webhook_copies=3)
    reference = await pay(sandbox)
    deliveries = await sandbox.hook.wait_for(reference, 6)
    by_type: dict[str, set[str]] = {}
    for delivery in deliveries:
        by_type.setdefault(delivery.event.type, set()).add(sandbox.parse(delivery).event_id)
    assert {t: len(ids) for t, ids in by_type.items()} == {"payment.pending": 1,
                                                          "payment.succeeded": 1}
    assert sorted(d.event.type for d in deliveries) == ["payment.pending"] * 3 + [
        "payment.succeeded"] * 3
    assert len({d.body for d in deliveries if d.event.type == "payment.succeeded"}) == 1
    await outbox_empty(sandbox)
    assert len(sandbox.hook.of(reference)) == 6


async def test_reorder_delivers_a_payments_events_newest_first(start_sandbox: StartSandbox):
    sandbox = await start_sandbox(sandbox_webhook_reorder=True)
    reference = await pay(sandbox)
    deliveries = await sandbox.hook.wait_for(reference, 2)
    assert [d.event.type for d in deliveries] == ["payment.succeeded", "payment.pending"]
    assert deliveries[0].at <= deliveries[1].at
    # a refund after the payment is final goes out as it happens
    gateway_ref = deliveries[0].event.data.id
    await sandbox.gateway.refund(gateway_ref, 1_000, "one ticket")
    third = (await sandbox.hook.wait_for(reference, 3))[2]
    assert third.event.type == "refund.succeeded" and sandbox.parse(third).refund is not None


async def test_reorder_with_mobile_money_waits_for_the_outcome(start_sandbox: StartSandbox):
    sandbox = await start_sandbox(sandbox_webhook_reorder=True)
    req = sandbox.request("mobile_money", phone="+265990000000")
    await sandbox.gateway.create_payment(req)
    deliveries = await sandbox.hook.wait_for(req.reference, 2)
    assert [d.event.type for d in deliveries] == ["payment.failed", "payment.pending"]


async def test_the_delay_mode_holds_each_delivery_back(start_sandbox: StartSandbox):
    sandbox = await start_sandbox(sandbox_webhook_delay_ms=400)
    req = sandbox.request()
    created = time.monotonic()
    await sandbox.gateway.create_payment(req)
    (pending,) = await sandbox.hook.wait_for(req.reference, 1)
    assert pending.at - created >= 0.4


async def test_a_failed_delivery_is_retried_with_the_same_event(start_sandbox: StartSandbox,
                                                                hook: Hook):
    hook.answers = [500, 503]
    sandbox = await start_sandbox()
    req = sandbox.request()
    await sandbox.gateway.create_payment(req)
    first, second, third = await sandbox.hook.wait_for(req.reference, 3)
    assert [d.answered for d in (first, second, third)] == [500, 503, 200]
    assert first.body == second.body == third.body  # the same event, signed again each time
    assert second.at - first.at >= 0.02 and third.at - second.at >= 0.04  # backing off
    assert len({sandbox.parse(d).event_id for d in (first, second, third)}) == 1


async def test_retries_stop_at_the_bound(start_sandbox: StartSandbox, hook: Hook):
    hook.always = 500
    sandbox = await start_sandbox(sandbox_webhook_attempts=3)
    req = sandbox.request()
    await sandbox.gateway.create_payment(req)
    await sandbox.hook.wait_for(req.reference, 3)
    await outbox_empty(sandbox)
    assert [d.answered for d in sandbox.hook.of(req.reference)] == [500, 500, 500]


async def test_an_unreachable_endpoint_is_retried_then_given_up(start_sandbox: StartSandbox,
                                                                caplog: pytest.LogCaptureFixture):
    sandbox = await start_sandbox(sandbox_webhook_attempts=2,
                                  sandbox_webhook_url=f"http://127.0.0.1:{unused_port()}/hooks")
    await sandbox.gateway.create_payment(sandbox.request())

    def given_up() -> list:
        return [r for r in caplog.records if "giving up" in r.getMessage()]

    await eventually(lambda: bool(given_up()))
    assert len(given_up()) == 1 and given_up()[0].attempt == 2
    assert sandbox.settings.sandbox_webhook_secrets[0] not in caplog.text
