"""Webhook signatures (engine/payments/signing.py) and the sandbox adapter's parse_webhook: pure,
no servers. A delivery is accepted only with a fresh, matching signature over the exact body."""

from __future__ import annotations

import aiohttp
import msgspec
import pytest

from engine.payments import signing
from engine.payments.base import BadSignature, MalformedWebhook
from engine.payments.sandbox import Event, EventData, SandboxGateway

SECRET = "whsec_test_0123456789"
NOW = 1_900_000_000


def body_of(**data) -> bytes:
    fields = {"id": "pay_1", "reference": "ORD-1-a-1", "amount": 6_000_000, "currency": "MWK",
              "status": "succeeded", "method": "card", "failure_reason": None} | data
    return msgspec.json.encode({"id": "evt_1", "type": f"payment.{fields['status']}",
                                "created": NOW, "data": fields})


BODY = body_of()


@pytest.fixture
async def gateway():
    async with aiohttp.ClientSession() as session:  # parse_webhook makes no call with it
        yield SandboxGateway(session, "http://127.0.0.1:9/sandbox", "sk", [SECRET])


def test_sign_then_verify_round_trip():
    header = signing.sign([SECRET], BODY, NOW)
    assert header.startswith(f"t={NOW},v1=") and len(header.split("v1=")[1]) == 64
    assert signing.verify(header, BODY, [SECRET], NOW) == NOW
    assert signing.verify(header, BODY, [SECRET], NOW + 300) == NOW  # the edge of the window


def test_any_v1_matching_any_secret_passes_during_a_rotation():
    both = signing.sign(["old-secret", "new-secret"], BODY, NOW)
    assert both.count("v1=") == 2
    signing.verify(both, BODY, ["new-secret"], NOW)
    signing.verify(both, BODY, ["old-secret"], NOW)
    signing.verify(signing.sign(["old-secret"], BODY, NOW), BODY, ["new-secret", "old-secret"], NOW)
    with_other_scheme = signing.sign(["new-secret"], BODY, NOW) + ",v0=deadbeef"
    signing.verify(with_other_scheme, BODY, ["new-secret"], NOW)


async def test_a_good_delivery_is_read(gateway: SandboxGateway):
    headers = {"Kwika-Signature": signing.sign([SECRET], BODY, NOW)}
    event = gateway.parse_webhook(headers, BODY, {}, NOW + 10)
    assert event.gateway == "sandbox" and event.event_id == "evt_1" and event.refund is None
    assert (event.status.reference, event.status.gateway_ref, event.status.state,
            event.status.amount, event.status.currency, event.status.method) == (
        "ORD-1-a-1", "pay_1", "succeeded", 6_000_000, "MWK", "card")
    lower = {"kwika-signature": headers["Kwika-Signature"]}  # a plain dict with other case
    assert gateway.parse_webhook(lower, BODY, {}, NOW).event_id == "evt_1"


async def test_a_refund_event_says_it_is_a_refund(gateway: SandboxGateway):
    refund = {"id": "re_1", "payment_id": "pay_1", "amount": 100, "status": "succeeded",
              "reason": "late", "created": NOW}
    body = msgspec.json.encode({"id": "evt_2", "type": "refund.succeeded", "created": NOW,
                                "data": msgspec.json.decode(body_of(refund=refund))["data"]})
    event = gateway.parse_webhook({"Kwika-Signature": signing.sign([SECRET], body, NOW)}, body,
                                  {}, NOW)
    assert event.refund is not None and (event.refund.refund_ref, event.refund.amount) == ("re_1", 100)
    assert event.status.state == "succeeded"


def _forged(body: bytes) -> dict[str, str]:
    return {"Kwika-Signature": signing.sign(["not-the-secret"], body, NOW)}


def _byte_changed(body: bytes) -> bytes:
    return body.replace(b"6000000", b"6000001")


BAD_SIGNATURES = {
    "forged": (_forged(BODY), BODY),
    "one byte changed": ({"Kwika-Signature": signing.sign([SECRET], BODY, NOW)}, _byte_changed(BODY)),
    "stale": ({"Kwika-Signature": signing.sign([SECRET], BODY, NOW - 301)}, BODY),
    "future": ({"Kwika-Signature": signing.sign([SECRET], BODY, NOW + 301)}, BODY),
    "missing header": ({}, BODY),
    "empty header": ({"Kwika-Signature": ""}, BODY),
    "garbage": ({"Kwika-Signature": "garbage"}, BODY),
    "no timestamp": ({"Kwika-Signature": "v1=" + "0" * 64}, BODY),
    "no v1": ({"Kwika-Signature": f"t={NOW}"}, BODY),
    "two timestamps": ({"Kwika-Signature": f"t={NOW},t={NOW}," + signing.sign(
        [SECRET], BODY, NOW).split(",")[1]}, BODY),
    "timestamp not a number": ({"Kwika-Signature": "t=soon,v1=" + "0" * 64}, BODY),
    "huge timestamp": ({"Kwika-Signature": "t=" + "9" * 40 + ",v1=" + "0" * 64}, BODY),
    "non-ascii": ({"Kwika-Signature": f"t={NOW},v1=é"}, BODY),
    "signature of another time": ({"Kwika-Signature": signing.sign([SECRET], BODY, NOW - 1).replace(
        f"t={NOW - 1}", f"t={NOW}")}, BODY),
    "too long": ({"Kwika-Signature": f"t={NOW}," + ",".join(["v1=" + "0" * 64] * 100)}, BODY),
}


@pytest.mark.parametrize("headers, body", BAD_SIGNATURES.values(), ids=BAD_SIGNATURES.keys())
async def test_a_bad_signature_is_refused(gateway: SandboxGateway, headers, body):
    with pytest.raises(BadSignature):
        gateway.parse_webhook(headers, body, {}, NOW)


MALFORMED = {
    "not json": b"{not json",
    "not an object": b"[1, 2]",
    "unknown type": msgspec.json.encode({"id": "evt_1", "type": "payment.exploded",
                                         "created": NOW, "data": msgspec.json.decode(BODY)["data"]}),
    "missing data": msgspec.json.encode({"id": "evt_1", "type": "payment.succeeded", "created": NOW}),
    "amount as text": body_of(amount="6000000"),
    "unknown status": body_of(status="maybe"),
    "type and status disagree": msgspec.json.encode(
        {"id": "evt_1", "type": "payment.failed", "created": NOW,
         "data": msgspec.json.decode(BODY)["data"]}),
    "refund without refund": msgspec.json.encode(
        {"id": "evt_1", "type": "refund.succeeded", "created": NOW,
         "data": msgspec.json.decode(BODY)["data"]}),
    "no payment id": msgspec.json.encode({"id": "evt_1", "type": "payment.succeeded",
                                          "created": NOW, "data": {"reference": "ORD-1-a-1"}}),
    "not utf-8": b'{"id": "\xff"}',
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_well_signed_body_of_the_wrong_shape_is_malformed(gateway: SandboxGateway, body):
    with pytest.raises(MalformedWebhook):
        gateway.parse_webhook({"Kwika-Signature": signing.sign([SECRET], body, NOW)}, body, {}, NOW)


async def test_fields_it_does_not_know_are_ignored(gateway: SandboxGateway):
    body = body_of(extra=1)
    event = gateway.parse_webhook({"Kwika-Signature": signing.sign([SECRET], body, NOW)}, body,
                                  {}, NOW)
    assert event.status.state == "succeeded"


def test_the_event_shape_is_the_documented_one():
    event = msgspec.json.decode(BODY, type=Event)
    assert isinstance(event.data, EventData)
    assert set(msgspec.json.decode(BODY)["data"]) == {
        "id", "reference", "amount", "currency", "status", "method", "failure_reason"}
