"""Bad input to the sandbox's JSON API: a 4xx in its one error shape, and nothing changed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from engine.settings import Settings
from tests.factories import Factory
from tests.sandbox_helpers import Sandbox, hook_server, start

API = "/sandbox/api/v1/payments"


@pytest.fixture
async def sandbox(settings: Settings) -> AsyncIterator[Sandbox]:
    async with AsyncExitStack() as stack, hook_server() as hook:
        yield await start(stack, settings, hook)


def auth(sandbox: Sandbox) -> dict[str, str]:
    return {"Authorization": f"Bearer {sandbox.settings.sandbox_api_key}"}


def good(**changes: Any) -> dict[str, Any]:
    body = {"reference": "ORD-1-abc-1", "amount": 6_000_000, "currency": "MWK", "method": "card",
            "customer": {"name": "Chikondi Banda", "email": "c@example.test"},
            "return_url": "http://127.0.0.1:8080/return", "description": "2 tickets"}
    return body | changes


async def shape(resp, status: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"error", "message", "fields"} and body["message"]
    return body


async def nothing_stored(sandbox: Sandbox) -> None:
    assert await sandbox.sandbox_keys("payment") == []
    assert await sandbox.sandbox_keys("webhook") == []


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer wrong-key",
                                           "Basic c2s6", "Bearer sk_sandbox_é", "Token x"])
async def test_a_missing_or_wrong_key_is_401(sandbox: Sandbox, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    body = await shape(await sandbox.client.post(API, json=good(), headers=headers), 401)
    assert body["error"] == "unauthenticated"
    resp = await sandbox.client.get(API + "/pay_1", headers=headers)
    assert resp.status == 401 and resp.headers["WWW-Authenticate"] == "Bearer"
    await nothing_stored(sandbox)


async def test_a_kwika_api_token_is_not_a_sandbox_key(sandbox: Sandbox, factory_token: str):
    resp = await sandbox.client.post(API, json=good(), headers={
        "Authorization": f"Bearer {factory_token}"})
    assert (await shape(resp, 401))["error"] == "unauthenticated"


@pytest.fixture
async def factory_token(sandbox: Sandbox) -> str:
    return (await Factory(sandbox.client).user()).token


MALFORMED: dict[str, Any] = {
    "no body": b"",
    "not json": b"{nope",
    "a list": b"[]",
    "not utf-8": b'{"reference": "\xff"}',
    "no reference": {k: v for k, v in good().items() if k != "reference"},
    "empty reference": good(reference=""),
    "reference with spaces": good(reference="ORD 1"),
    "reference too long": good(reference="R" * 101),
    "zero amount": good(amount=0),
    "negative amount": good(amount=-100),
    "fractional amount": good(amount=10.5),
    "amount as text": good(amount="6000000"),
    "huge amount": good(amount=10**14),
    "lowercase currency": good(currency="mwk"),
    "unknown method": good(method="cheque"),
    "no customer": {k: v for k, v in good().items() if k != "customer"},
    "bad email": good(customer={"name": "A", "email": "not-an-email"}),
    "empty name": good(customer={"name": "", "email": "a@b.c"}),
    "bad phone": good(customer={"name": "A", "email": "a@b.c", "phone": "call me"}),
    "relative return url": good(return_url="/return"),
    "javascript return url": good(return_url="javascript:alert(1)"),
    "unknown field": good(tip=100),
    "mobile money without phone": good(method="mobile_money", network="mpesa"),
    "mobile money without network": good(method="mobile_money", customer={
        "name": "A", "email": "a@b.c", "phone": "+265991234567"}),
    "unknown network": good(method="mobile_money", network="vodafone", customer={
        "name": "A", "email": "a@b.c", "phone": "+265991234567"}),
    "network on a card": good(network="mpesa"),
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_payment_is_422_and_stores_nothing(sandbox: Sandbox, body):
    kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
    resp = await sandbox.client.post(API, headers={**auth(sandbox),
                                                   "Content-Type": "application/json"}, **kwargs)
    answer = await shape(resp, 422)
    assert answer["error"] in ("invalid", "malformed_json")
    await nothing_stored(sandbox)


async def test_a_reference_is_used_once(sandbox: Sandbox):
    first = await sandbox.client.post(API, json=good(), headers=auth(sandbox))
    assert first.status == 201
    created = await first.json()
    again = await sandbox.client.post(API, json=good(amount=1), headers=auth(sandbox))
    body = await shape(again, 409)
    assert body["error"] == "duplicate_reference" and body["fields"] == {"reference": "already used"}
    now = await (await sandbox.client.get(f"{API}/{created['id']}", headers=auth(sandbox))).json()
    assert now["amount"] == 6_000_000 and now["status"] == "pending"
    assert len(await sandbox.sandbox_keys("payment")) == 1


async def test_the_same_reference_at_the_same_moment_makes_one_payment(sandbox: Sandbox):
    answers = await asyncio.gather(*[
        sandbox.client.post(API, json=good(reference="ORD-race-1"), headers=auth(sandbox))
        for _ in range(10)])
    assert sorted(r.status for r in answers) == [201] + [409] * 9
    assert len(await sandbox.sandbox_keys("payment")) == 1


async def test_unknown_payments_are_404(sandbox: Sandbox):
    for resp in (await sandbox.client.get(f"{API}/pay_nope", headers=auth(sandbox)),
                 await sandbox.client.get(f"{API}?reference=ORD-none", headers=auth(sandbox)),
                 await sandbox.client.post(f"{API}/pay_nope/refunds", json={},
                                           headers=auth(sandbox))):
        assert (await shape(resp, 404))["error"] == "not_found"
    assert (await shape(await sandbox.client.get(API, headers=auth(sandbox)), 422))[
        "fields"] == {"reference": "required"}


@pytest.mark.parametrize("body", [{"amount": 0}, {"amount": -5}, {"amount": "all"},
                                  {"reason": "x" * 201}, {"refund_everything": True}])
async def test_a_malformed_refund_is_422_and_refunds_nothing(sandbox: Sandbox, body):
    created = await (await sandbox.client.post(API, json=good(), headers=auth(sandbox))).json()
    resp = await sandbox.client.post(f"{API}/{created['id']}/refunds", json=body,
                                     headers=auth(sandbox))
    await shape(resp, 422)
    now = await (await sandbox.client.get(f"{API}/{created['id']}", headers=auth(sandbox))).json()
    assert now["refunds"] == [] and now["refunded"] == 0
