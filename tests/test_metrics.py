"""/metrics (real Redis and Postgres): holds made and refused, scans, request latency by route
template, stream gauges; who may read it; and the counts of two server processes summed."""
# ruff: noqa: F811  (fixtures imported by name)

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from engine.settings import Secret
from kwika import cli
from storefront.app import create_app
from storefront.appkeys import KEYS
from storefront.room.ticker import tick_rooms
from tests.factories import PASSWORD, Factory
from tests.gate_helpers import KEYRING, client, sell_event  # noqa: F401
from tests.test_purchase_flow import Shop, _event, guest, store  # noqa: F401
from tests.test_room_http import room_on_sale

ROOT = Path(__file__).resolve().parents[1]
HOLDS_ROUTE = "/api/events/{event_id}/holds"


def value(text: str, name: str, **labels: str) -> float:
    """The sample `name` with exactly `labels` (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def label_values(text: str, name: str, label: str) -> set[str]:
    return {s.labels[label] for f in text_string_to_metric_families(text) for s in f.samples
            if s.name == name and label in s.labels}


async def scrape(client: TestClient, **headers: str) -> str:
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/plain"
    return await resp.text()


async def test_counts_a_hold_a_refusal_and_a_scan(client, factory):
    sold = await sell_event(client, factory, tickets=2)
    before = await scrape(client)
    buyer = await factory.user()
    url = f"/api/events/{sold.event_id}/holds"
    made = await client.post(url, headers=buyer.h,
                             json={"items": [{"package_id": sold.package["id"], "quantity": 1}]})
    assert made.status == 201, await made.text()
    other = await factory.user()
    refused = await client.post(url, headers=other.h,
                                json={"items": [{"package_id": sold.package["id"], "quantity": 9}]})
    assert refused.status == 409
    reason = (await refused.json())["error"]
    scan = await client.post("/api/scan", headers=sold.provider.h,
                             json={"event_id": sold.event_id, "code": sold.code(0), "gate": "N"})
    assert (await scan.json())["result"] == "admitted"
    assert (await client.get("/no/such/page/123")).status == 404
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("kwika_holds_total", outcome="made", reason="") == 1
    assert delta("kwika_holds_total", outcome="refused", reason=reason) == 1
    assert delta("kwika_scans_total", result="admitted") == 1
    count = "kwika_http_request_duration_seconds_count"
    assert delta(count, route=HOLDS_ROUTE, method="POST", status="2xx") == 1
    assert delta(count, route=HOLDS_ROUTE, method="POST", status="4xx") == 1
    assert delta(count, route="unmatched", method="GET", status="4xx") == 1
    routes = label_values(after, count, "route")
    raw = [r for r in routes if re.search(rf"/{sold.event_id}(/|$)", r) or "/no/such" in r]
    assert not raw, raw  # a template, never the path as sent
    # the orders stream fulfillment read, and the gate's check-ins stream, at scrape time
    assert value(after, "kwika_stream_pending", stream="orders", event=str(sold.event_id),
                 group="fulfillment") == 0
    assert str(sold.event_id) in label_values(after, "kwika_stream_pending", "event")
    # (no check-in writer ran here: the scan waits in its stream, no group has it yet)
    assert value(after, "kwika_stream_length", stream="checkins", event=str(sold.event_id)) == 1
    assert value(after, "kwika_dead_letters") == 0


async def test_counts_a_payment_and_its_purchase(store: Shop):
    before = await scrape(store.client)
    event, pkg = await _event(store)
    async with guest(store) as buyer:
        order = await buyer.order_until_paying(event, pkg)
        await buyer.pay_on_hosted_page(order)
        await buyer.until(order["order_number"], ("paid",))
    after = await scrape(store.client)
    assert (value(after, "kwika_purchases_confirmed_total")
            - value(before, "kwika_purchases_confirmed_total")) == 1
    assert (value(after, "kwika_payments_total", state="succeeded")
            - value(before, "kwika_payments_total", state="succeeded")) == 1


async def test_a_hold_without_a_waiting_room_pass_is_counted(client, factory):
    _, event, pkg = await room_on_sale(factory)
    before = await scrape(client)
    buyer = await factory.user()
    refused = await client.post(f"/api/events/{event['id']}/holds", headers=buyer.h,
                                json={"items": [{"package_id": pkg["id"], "quantity": 1}]})
    assert refused.status == 403 and (await refused.json())["error"] == "pass_required"
    after = await scrape(client)
    labels = {"outcome": "refused", "reason": "pass_required"}
    assert value(after, "kwika_holds_total", **labels) - value(before, "kwika_holds_total",
                                                               **labels) == 1


async def test_waiting_room_gauges_read_at_scrape_time(client, factory, rds):
    keys = client.server.app[KEYS]
    await rds.sadd(keys.rooms_on(), 77)
    await rds.zadd(keys.room(77)[1], {"g:a": 1, "g:b": 2, "g:c": 3})
    await rds.hset(keys.room(77)[3], "g:z", "1|0")
    text = await scrape(client)
    assert value(text, "kwika_room_queued", event="77") == 3
    assert value(text, "kwika_room_passes", event="77") == 1


async def test_admission_ticks_count_who_they_admit(client):
    class Room:  # two rooms on, one admitting 2 visitors, the other nobody
        async def rooms_on(self):
            return [1, 2]

        async def tick(self, event_id):
            return SimpleNamespace(admitted_now=2 if event_id == 1 else 0)

    before = value(await scrape(client), "kwika_room_admitted_total")
    assert await tick_rooms(Room()) == 2
    assert value(await scrape(client), "kwika_room_admitted_total") - before == 2


@pytest.fixture
async def guarded(settings):
    mine = msgspec.structs.replace(settings, metrics_token=Secret("m" * 32))
    async with TestClient(TestServer(create_app(mine))) as test_client:
        yield test_client


async def test_only_admins_and_the_token_may_read(guarded):
    factory = Factory(guarded)
    assert (await guarded.get("/metrics")).status == 401  # loopback is not enough with a token
    assert (await guarded.get("/metrics", headers={"Authorization": "Bearer " + "x" * 32})
            ).status == 403
    buyer = await factory.user()
    assert (await guarded.get("/metrics", headers=buyer.h)).status == 403
    provider = await factory.user("provider")
    assert (await guarded.get("/metrics", headers=provider.h)).status == 403
    await scrape(guarded, Authorization="Bearer " + "m" * 32)
    admin = await factory.user("admin")
    await scrape(guarded, **admin.h)


async def test_an_admin_session_may_read(guarded):
    factory = Factory(guarded)
    buyer, admin = await factory.user(), await factory.user("admin")
    for who, status in ((buyer, 403), (admin, 200)):  # a session, then an admin's
        guarded.session.cookie_jar.clear()
        login = await guarded.post("/api/auth/login", json={"email": who.user["email"],
                                                            "password": PASSWORD})
        assert login.status == 200
        assert (await guarded.get("/metrics")).status == status


async def test_without_a_token_loopback_may_read_but_not_through_a_proxy(client):
    await scrape(client)
    resp = await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert resp.status == 401


def test_serve_makes_a_fresh_metrics_folder_when_none_is_set(monkeypatch):
    monkeypatch.setenv(cli.METRICS_DIR_ENV, "")  # put back as it was afterwards
    monkeypatch.delenv(cli.METRICS_DIR_ENV)
    made = cli._metrics_dir()
    assert made is not None and made.is_dir() and not any(made.iterdir())
    assert os.environ[cli.METRICS_DIR_ENV] == str(made)
    assert cli._metrics_dir() is None  # set now: kept as it is
    made.rmdir()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.read().decode()


@pytest.mark.timeout(120)
async def test_two_server_processes_are_summed(settings, tmp_path):
    port = _free_port()
    folder = tmp_path / "metrics"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KWIKA_")}
    env.update(PYTHONPATH=str(ROOT), REDIS_URL=settings.redis_url,
               DATABASE_URL=settings.database_url, KWIKA_REDIS_PREFIX=settings.redis_prefix,
               KWIKA_SECRET_KEY=settings.secret_key, KWIKA_LOG_JSON="false",
               KWIKA_TICKET_SIGNING_KEYS=KEYRING.to_text(), PROMETHEUS_MULTIPROC_DIR=str(folder))
    log = (tmp_path / "serve.log").open("w")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kwika.cli", "serve", "--port", str(port), "--workers", "2",
        env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                await asyncio.to_thread(_get, base + "/healthz")
                break
            except OSError:
                assert proc.returncode is None and time.monotonic() < deadline, \
                    (tmp_path / "serve.log").read_text()
                await asyncio.sleep(0.2)
        sent = 1
        # each request on a new connection: the two processes take turns accepting them
        while len(list(folder.glob("histogram_*.db"))) < 2 and sent < 400:
            await asyncio.to_thread(_get, base + "/healthz")
            sent += 1
        assert len(list(folder.glob("histogram_*.db"))) == 2, "one process took every request"
        _, text = await asyncio.to_thread(_get, base + "/metrics")
        assert value(text, "kwika_http_request_duration_seconds_count",
                     route="/healthz", method="GET", status="2xx") == sent
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
        log.close()
    assert proc.returncode == 0, (tmp_path / "serve.log").read_text()
