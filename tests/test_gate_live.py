"""Live gate counts over Server-Sent Events (real Redis and Postgres): the first message at
once, the next when a scan changes them; only for those who may work the gate; streams capped
with the event pages'."""
# ruff: noqa: F811  (fixtures imported by name)

from __future__ import annotations

import json

import msgspec
from aiohttp.test_utils import TestClient, TestServer

from engine.settings import Secret
from storefront.app import create_app
from tests.factories import Factory
from tests.gate_helpers import KEYRING, client, sell_event  # noqa: F401


async def next_message(resp) -> dict:
    while True:
        line = (await resp.content.readline()).decode()
        if line.startswith("data: "):
            return json.loads(line[6:])


async def test_counts_stream_on_change(client, factory):
    sold = await sell_event(client, factory, tickets=2)
    url = f"/events/{sold.event_id}/gate/live"
    async with client.get(url, headers=sold.provider.h) as resp:
        assert resp.status == 200 and resp.content_type == "text/event-stream"
        assert await next_message(resp) == {"v": 1, "checked_in": 0, "expected": 2, "gates": {}}
        scan = await client.post("/api/scan", json={"event_id": sold.event_id,
                                                    "code": sold.code(1), "gate": "North"},
                                 headers=sold.provider.h)
        assert (await scan.json())["result"] == "admitted"
        assert await next_message(resp) == {"v": 1, "checked_in": 1, "expected": 2,
                                            "gates": {"North": 1}}
    assert (await client.get(url)).status == 401
    stranger = await factory.user("provider")
    assert (await client.get(url, headers=stranger.h)).status == 404


async def test_streams_are_capped_per_address(settings):
    mine = msgspec.structs.replace(settings, ticket_signing_keys=Secret(KEYRING.to_text()),
                                   live_streams_per_ip=1)
    async with TestClient(TestServer(create_app(mine))) as capped:
        sold = await sell_event(capped, Factory(capped), tickets=1)
        url = f"/events/{sold.event_id}/gate/live"
        async with capped.get(url, headers=sold.provider.h) as first:
            await next_message(first)
            second = await capped.get(url, headers=sold.provider.h)
            assert second.status == 429 and "Retry-After" in second.headers
