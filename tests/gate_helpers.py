"""Shared set-up of the gate tests: an app with a signing key, an event with tickets sold and
written by the real fulfillment consumer, and codes to scan."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from engine.settings import Secret
from engine.tickets import Keyring, TicketClaims, sign_ticket
from storefront.app import create_app
from storefront.appkeys import DB, INVENTORY
from tests.factories import Actor, Factory
from tests.test_fulfillment import _desk, _sell

KEYRING = Keyring.generate("GT1")
EV = "/api/provider/events"


@pytest.fixture
async def client(settings, tmp_path):
    mine = msgspec.structs.replace(settings, ticket_signing_keys=Secret(KEYRING.to_text()),
                                   tickets_dir=str(tmp_path / "tickets"), ticket_render_workers=1)
    async with TestClient(TestServer(create_app(mine))) as test_client:
        yield test_client


@dataclass
class Sold:
    provider: Actor
    event: dict
    package: dict
    tickets: list[str]  # ticket numbers, in order

    @property
    def event_id(self) -> int:
        return self.event["id"]

    def code(self, n: int = 0, generation: int = 1, keyring: Keyring = KEYRING) -> str:
        return payload(self.tickets[n], generation, keyring)


def payload(number: str, generation: int = 1, keyring: Keyring = KEYRING) -> str:
    event_id = int(number.split("-")[1])
    return sign_ticket(keyring, TicketClaims(ticket_number=number, event_id=event_id,
                                             generation=generation))


async def sell_event(client: TestClient, factory: Factory, tickets: int = 3,
                     provider: Actor | None = None, order: str = "ORD-1-GATE") -> Sold:
    """A published event of `provider` (a new one by default) with `tickets` tickets sold in one
    order and written to Postgres and the gate register."""
    app = client.server.app
    provider = provider or await factory.user("provider")
    event = await factory.event(provider)
    pkg = await factory.package(provider, event["id"], capacity=max(tickets, 10), price=5_000)
    assert (await client.post(f"{EV}/{event['id']}/publish", headers=provider.h)).status == 200
    await _sell(app[INVENTORY], event["id"], "u:1", {pkg["id"]: tickets}, number=order)
    assert await _desk(app).round() >= 1
    numbers = [r["ticket_number"] for r in await app[DB].fetch(
        "SELECT t.ticket_number FROM tickets t JOIN orders o ON o.id = t.order_id "
        "WHERE o.order_number = $1 ORDER BY t.id", order)]
    return Sold(provider, event, pkg, numbers)
