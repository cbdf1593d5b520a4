"""Redis restored from the record: a Redis brought back from an older append-only file forgets
the sales made since; the record (Postgres) puts them back before the event sells again.

    copy the AOF, sell, restore the copy, restart: the seat is sold, not available
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from engine.audit import audit
from engine.inventory import HoldRefused
from engine.onsale import reconcile_once
from engine.payments.base import PaymentStatus, WebhookEvent
from storefront.app import create_app
from storefront.appkeys import CATALOG, DB, INVENTORY, ORDERS, PAYMENTS
from tests.factories import Factory

EV = "/api/provider/events"


class AofRedis:
    """A redis-server of this test's own that keeps an append-only file, fsynced on every write."""

    def __init__(self, folder: Path):
        self.folder = folder
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def aof(self) -> list[Path]:
        return [p for p in self.folder.iterdir() if p.name.startswith("appendonly")]


@pytest.fixture
def aof_redis(tmp_path):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (./dev test installs it)")
    server = AofRedis(tmp_path / "redis")
    server.folder.mkdir()
    server.start()
    yield server
    server.stop()


async def test_a_redis_restored_from_an_older_aof_does_not_sell_a_sold_seat_again(settings, aof_redis,
                                                                                tmp_path):
    app = create_app(msgspec.structs.replace(settings, redis_url=aof_redis.url))
    async with TestClient(TestServer(app)) as client:
        factory = Factory(client)
        provider = await factory.user("provider")
        event = await factory.event(provider, requires_seating=True)
        pkg = await factory.package(provider, event["id"], price=9_000)
        section = await factory.section(provider, event["id"], pkg["id"], rows=1, seats_per_row=3)
        seat = section["seats"][1]["id"]
        assert (await client.post(f"{EV}/{event['id']}/publish", headers=provider.h)).status == 200
        inventory = app[INVENTORY]

        backup = tmp_path / "backup"  # copy the AOF
        shutil.copytree(aof_redis.folder, backup)

        buyer = await factory.user()  # sell the seat: hold, checkout, a payment that succeeds
        hold = await (await client.post(f"/api/events/{event['id']}/holds", headers=buyer.h,
                                        json={"seat_ids": [seat]})).json()
        order = await (await client.post(f"/api/holds/{hold['id']}/checkout", headers=buyer.h, json={
            "billing": {"name": "Tiya", "email": "tiya@example.test"}, "accept_terms": True,
            "use_buyer_details": True})).json()
        _draft, reference, _ = await app[ORDERS].begin_payment(
            event["id"], hold["id"], f"u:{buyer.user['id']}", "sandbox", "card")
        status = PaymentStatus(reference=reference, gateway_ref="gw", state="succeeded",
                               amount=order["total"], currency="MWK", method="card")
        assert await app[PAYMENTS].settle(WebhookEvent(gateway="sandbox", event_id="evt-1",
                                                       status=status), b"{}") == "succeeded"
        assert (await inventory.availability(event["id"], seat_ids=[seat])).seats[seat] == "sold"

        aof_redis.stop()  # restore the copy, restart
        shutil.rmtree(aof_redis.folder)
        shutil.copytree(backup, aof_redis.folder)
        aof_redis.start()
        await inventory.client.connection_pool.disconnect()
        assert (await inventory.availability(event["id"], seat_ids=[seat])).seats[seat] == "available"
        assert any("not sold in Redis" in p for p in await audit(inventory, event["id"], app[DB]))

        await reconcile_once(app[CATALOG], inventory)  # what the worker does every few seconds
        assert (await inventory.availability(event["id"], seat_ids=[seat])).seats[seat] == "sold"
        rival = await factory.user()
        with pytest.raises(HoldRefused) as refused:
            await inventory.hold(event["id"], f"u:{rival.user['id']}", seat_ids=[seat])
        assert refused.value.reason == "seat_unavailable"
        assert await audit(inventory, event["id"], app[DB]) == []
