"""The waiting room over HTTP: joining with a proof of work, the queue's status, passes that the
hold, best-available and checkout routes demand, the provider's settings, and bad input (a clear
4xx, never a 5xx)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from engine.room.tokens import make_pass, solve, solves
from storefront.room.service import ROOM
from tests.factories import Factory

BILLING = {"billing": {"name": "Ada Buyer", "email": "ada@example.test"}, "accept_terms": True,
           "use_buyer_details": True}


class Visitor:
    """One browser: its own cookies."""

    def __init__(self, client):
        self.base = str(client.make_url("")).rstrip("/")
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.session.request(method, self.base + path, **kw) as resp:
            body = await resp.json() if resp.content_type == "application/json" else await resp.text()
            return resp.status, body

    def cookie(self, name: str) -> str | None:
        for c in self.session.cookie_jar:
            if c.key == name:
                return c.value
        return None

    def set_cookie(self, name: str, value: str) -> None:
        self.session.cookie_jar.update_cookies({name: value}, aiohttp.client.URL(self.base))

    async def join(self, event_id: int) -> tuple[int, Any]:
        status, c = await self.call("GET", f"/api/events/{event_id}/room/challenge")
        assert status == 200, c
        return await self.call("POST", f"/api/events/{event_id}/room/join", json={
            "challenge": c["challenge"], "solution": solve(c["challenge"], c["difficulty"])})

    async def close(self) -> None:
        await self.session.close()


@pytest.fixture
async def visitors(client):
    made: list[Visitor] = []

    def make() -> Visitor:
        made.append(Visitor(client))
        return made[-1]
    yield make
    for v in made:
        await v.close()


async def room_on_sale(factory: Factory, capacity: int = 10, **room: Any):
    provider = await factory.user("provider")
    event = await factory.event(provider)
    pkg = await factory.package(provider, event["id"], capacity=capacity, max_per_order=4)
    assert (await factory.client.post(f"/api/provider/events/{event['id']}/publish",
                                      headers=provider.h)).status == 200
    settings = {"enabled": True, "rate_per_second": 0.01, "difficulty": 4, **room}
    resp = await factory.client.patch(f"/api/provider/events/{event['id']}/room", json=settings,
                                      headers=provider.h)
    assert resp.status == 200, await resp.text()
    return provider, event, pkg


async def test_an_admitted_visitor_holds_and_one_in_line_cannot(client, factory, visitors):
    _, event, pkg = await room_on_sale(factory)
    eid = event["id"]
    first, second = visitors(), visitors()
    status, joined = await first.join(eid)
    assert status == 200 and joined["place"] == "admitted", joined  # the bucket's first token
    assert first.cookie(f"kwika_pass_{eid}")
    status, joined = await second.join(eid)
    assert status == 200 and joined["place"] == "queued" and joined["ahead"] == 0
    assert joined["progress"] == pytest.approx(0.5) and joined["poll_seconds"] == 2
    status, third = await visitors().join(eid)  # 1 ahead at 0.01 a second: 100 s to wait
    assert third["wait_seconds"] == 100 and third["poll_seconds"] == 10
    body = {"items": [{"package_id": pkg["id"], "quantity": 2}]}
    status, refused = await second.call("POST", f"/api/events/{eid}/holds", json=body)
    assert status == 403 and refused["error"] == "pass_required", refused
    status, hold = await first.call("POST", f"/api/events/{eid}/holds", json=body)
    assert status == 201, hold
    status, refused = await second.call("POST", f"/api/holds/{hold['id']}/checkout", json=BILLING)
    assert status == 403 and refused["error"] == "pass_required"  # checkout asks for it too
    status, order = await first.call("POST", f"/api/holds/{hold['id']}/checkout", json=BILLING)
    assert status == 200, order
    # one basket per pass: given back, the same pass makes no other
    assert (await first.call("POST", f"/api/orders/{order['order_number']}/cancel", json={}))[0] == 204
    status, refused = await first.call("POST", f"/api/events/{eid}/holds", json=body)
    assert status == 403 and refused["error"] == "pass_used"
    status, refused = await first.call("POST", f"/api/events/{eid}/best-available",
                                       json={"quantity": 1})
    assert status == 403 and refused["error"] == "pass_used"
    # and the event page sends a visitor without a pass to the line
    async with second.session.get(f"{second.base}/events/{event['slug']}",
                                  allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == f"/events/{event['slug']}/queue"


async def test_a_retried_hold_with_its_idempotency_key_is_the_same_basket(client, factory, visitors):
    _, event, pkg = await room_on_sale(factory, rate_per_second=1000)
    eid, v = event["id"], visitors()
    await v.join(eid)
    body, key = {"items": [{"package_id": pkg["id"], "quantity": 1}]}, {"Idempotency-Key": "k-1"}
    first = await v.call("POST", f"/api/events/{eid}/holds", json=body, headers=key)
    again = await v.call("POST", f"/api/events/{eid}/holds", json=body, headers=key)
    assert first[0] == again[0] == 201 and first[1]["id"] == again[1]["id"]
    other = await v.call("POST", f"/api/events/{eid}/holds", json=body, headers={"Idempotency-Key": "k-2"})
    assert other[0] == 403 and other[1]["error"] == "pass_used"


async def test_early_arrivals_wait_in_the_pre_queue(client, factory, visitors):
    release = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    _, event, _ = await room_on_sale(factory, rate_per_second=1000, release_at=release)
    status, place = await visitors().join(event["id"])
    assert status == 200 and place["place"] == "prequeue" and place["state"] == "before_release"
    assert place["ahead"] is None and "drawn at random" in place["message"]
    assert place["release_at"] is not None and place["next"] is None


async def test_forged_expired_other_event_and_borrowed_passes_are_refused(client, factory, visitors):
    _, event, pkg = await room_on_sale(factory, rate_per_second=1000)
    _, other, _ = await room_on_sale(factory, rate_per_second=1000)
    eid, body = event["id"], {"items": [{"package_id": pkg["id"], "quantity": 1}]}
    owner, thief = visitors(), visitors()
    assert (await owner.join(eid))[1]["place"] == "admitted"
    assert (await owner.join(other["id"]))[1]["place"] == "admitted"
    assert (await thief.join(other["id"]))[1]["place"] == "admitted"
    good = owner.cookie(f"kwika_pass_{eid}")
    cases = {
        "pass_invalid": good[:-3] + ("abc" if not good.endswith("abc") else "abd"),  # forged
        "pass_other_event": thief.cookie(f"kwika_pass_{other['id']}"),
        "pass_not_yours": good,  # borrowed
    }
    for reason, value in cases.items():
        thief.set_cookie(f"kwika_pass_{eid}", value)
        status, refused = await thief.call("POST", f"/api/events/{eid}/holds", json=body)
        assert status == 403 and refused["error"] == reason, (reason, refused)
    room = client.server.app[ROOM]
    await room.runner.client.zadd(room.keys.room(eid)[2], {
        (await room.runner.client.hkeys(room.keys.room(eid)[3]))[0].decode(): 0})
    await room.tick(eid)  # the owner's pass ran out
    status, refused = await owner.call("POST", f"/api/events/{eid}/holds", json=body)
    assert status == 403 and refused["error"] == "pass_expired"


async def test_a_pass_with_a_good_signature_that_the_room_did_not_give_is_refused(
        client, factory, visitors):
    _, event, pkg = await room_on_sale(factory, rate_per_second=0.01)
    eid = event["id"]
    ahead, visitor = visitors(), visitors()
    await ahead.join(eid)
    await visitor.join(eid)
    guest = visitor.cookie("kwika_guest").rsplit(".", 1)[0]
    from storefront.appkeys import SETTINGS
    secret = client.server.app[SETTINGS].secret_key
    visitor.set_cookie(f"kwika_pass_{eid}", make_pass(secret, eid, f"g:{guest}", 1, 2**42))
    status, refused = await visitor.call("POST", f"/api/events/{eid}/holds",
                                         json={"items": [{"package_id": pkg["id"], "quantity": 1}]})
    assert status == 403 and refused["error"] == "pass_expired"  # the room gave this one none


async def test_a_cohort_that_skips_the_work_or_reuses_a_solution_gets_no_place(
        client, factory, visitors):
    _, event, _ = await room_on_sale(factory, rate_per_second=0.01, difficulty=12)
    eid = event["id"]
    person = visitors()
    status, c = await person.call("GET", f"/api/events/{eid}/room/challenge")
    solution = solve(c["challenge"], c["difficulty"])
    assert (await person.call("POST", f"/api/events/{eid}/room/join", json={
        "challenge": c["challenge"], "solution": solution}))[0] == 200
    bots = [visitors() for _ in range(12)]
    answers = []
    for i, bot in enumerate(bots):
        status, mine = await bot.call("GET", f"/api/events/{eid}/room/challenge")
        assert status == 200
        if i % 3 == 0:  # skips the work: any number that does not solve it
            guess = next(str(n) for n in range(10**6) if not solves(mine["challenge"], str(n), 12))
            sent = {"challenge": mine["challenge"], "solution": guess}
        elif i % 3 == 1:  # reuses the person's solved challenge
            sent = {"challenge": c["challenge"], "solution": solution}
        else:  # solves one challenge and sends it twice, from a second identity too
            sent = {"challenge": mine["challenge"], "solution": solve(mine["challenge"], 12)}
            assert (await bot.call("POST", f"/api/events/{eid}/room/join", json=sent))[0] == 200
            other = visitors()
            answers.append(await other.call("POST", f"/api/events/{eid}/room/join", json=sent))
            continue
        answers.append(await bot.call("POST", f"/api/events/{eid}/room/join", json=sent))
    assert all(status in (401, 422) for status, _ in answers), answers
    room = client.server.app[ROOM]
    figures = await room.tick(eid)
    assert figures.queued + figures.admitted == 1 + 4  # the person, and each bot that did the work once


async def test_the_same_solution_twice_is_one_place(client, factory, visitors):
    _, event, _ = await room_on_sale(factory, rate_per_second=0.01)
    eid = event["id"]
    v = visitors()
    _, c = await v.call("GET", f"/api/events/{eid}/room/challenge")
    sent = {"challenge": c["challenge"], "solution": solve(c["challenge"], c["difficulty"])}
    first = await v.call("POST", f"/api/events/{eid}/room/join", json=sent)
    again = await v.call("POST", f"/api/events/{eid}/room/join", json=sent)  # a reload, a 2nd tab
    assert first[0] == again[0] == 200 and again[1]["place"] == first[1]["place"]
    assert (await client.server.app[ROOM].tick(eid)).admitted + \
        (await client.server.app[ROOM].tick(eid)).queued == 1


async def test_the_work_gets_harder_while_joins_spike(client, factory, visitors):
    _, event, _ = await room_on_sale(factory, difficulty=4)
    eid, v = event["id"], visitors()
    assert (await v.call("GET", f"/api/events/{eid}/room/challenge"))[1]["difficulty"] == 4
    room = client.server.app[ROOM]
    await room.runner.client.hset(room.keys.room(eid)[0], mapping={  # 1,000 joins this second
        "jsec": int(time.time()), "jn": 1000, "jlast": 0})
    harder = (await v.call("GET", f"/api/events/{eid}/room/challenge"))[1]
    assert harder["difficulty"] == 7  # KWIKA_ROOM_JOIN_SPIKE 200: 1 + log2(1000 / 200) bits more


async def test_joins_per_address_are_limited(client, factory, visitors):
    _, event, _ = await room_on_sale(factory, rate_per_second=0.01, difficulty=0)
    eid = event["id"]
    from storefront.appkeys import SETTINGS
    limit = client.server.app[SETTINGS].room_joins_per_ip_per_minute
    results = await asyncio.gather(*(visitors().join(eid) for _ in range(limit + 3)))
    statuses = sorted(s for s, _ in results)
    assert statuses.count(200) == limit and statuses.count(429) == 3


async def test_the_room_says_sold_out_and_all_held(client, factory, visitors):
    _, event, pkg = await room_on_sale(factory, capacity=2, rate_per_second=1000)
    eid = event["id"]
    buyer, waiting = visitors(), visitors()
    await buyer.join(eid)
    status, hold = await buyer.call("POST", f"/api/events/{eid}/holds",
                                    json={"items": [{"package_id": pkg["id"], "quantity": 2}]})
    assert status == 201
    status, place = await waiting.join(eid)
    assert place["state"] == "all_held" and place["place"] == "queued"
    assert "basket" in place["message"]
    from engine.inventory import Hold
    from storefront.appkeys import INVENTORY
    inv = client.server.app[INVENTORY]
    found, _ = await inv.find_hold(eid, hold_id=hold["id"])
    assert isinstance(found, Hold)
    await inv.confirm(eid, found, "ORD-1-ROOMTEST")
    status, place = await waiting.call("GET", f"/api/events/{eid}/room")
    assert place["state"] == "sold_out" and place["message"].startswith("Sold out")


async def test_room_off_unknown_event_and_bad_input(client, factory, visitors):
    provider = await factory.user("provider")
    event = await factory.published_event(provider)
    eid = event["id"]
    v = visitors()
    status, place = await v.call("GET", f"/api/events/{eid}/room")
    assert status == 200 and place["state"] == "off" and place["next"] == f"/events/{event['slug']}"
    assert (await v.call("GET", f"/api/events/{eid}/room/challenge"))[0] == 409
    assert (await v.call("GET", "/api/events/999999/room"))[0] == 404
    assert (await v.call("GET", "/events/999999/room/live"))[0] == 404
    _, on, _ = await room_on_sale(factory)
    oid = on["id"]
    status, c = await v.call("GET", f"/api/events/{oid}/room/challenge")
    for body in ({"challenge": c["challenge"] + "x", "solution": "1"},
                 {"challenge": "c1.1.g:x.00.1.1.deadbeef", "solution": "1"},
                 {"challenge": c["challenge"], "solution": "-1"},
                 {"challenge": c["challenge"]}, {"challenge": "é" * 10, "solution": "1"}, []):
        status, answer = await v.call("POST", f"/api/events/{oid}/room/join", json=body)
        assert 400 <= status < 500, (body, answer)
    async with v.session.post(f"{v.base}/api/events/{oid}/room/join", data=b"{not json",
                              headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400
    for junk in ("", "x", "p1.1.g:x.1.1.zz", "p1." + "9" * 400, "\u00e9.abc"):
        v.set_cookie(f"kwika_pass_{oid}", junk)
        status, _ = await v.call("POST", f"/api/events/{oid}/holds",
                                 json={"items": [{"package_id": 1, "quantity": 1}]})
        assert status in (403, 422)
    stranger = visitors()  # no identity at all: a join without a challenge
    status, _ = await stranger.call("POST", f"/api/events/{oid}/room/join",
                                    json={"challenge": "x", "solution": "1"})
    assert status == 401


async def test_the_provider_controls_the_room(client, factory):
    provider, event, _ = await room_on_sale(factory, rate_per_second=5)
    eid, path = event["id"], f"/api/provider/events/{event['id']}/room"
    resp = await client.get(path, headers=provider.h)
    room = await resp.json()
    assert resp.status == 200 and room["settings"]["rate_per_second"] == 5
    assert room["state"] == "open" and room["queued"] == 0
    resp = await client.patch(path, json={"paused": True, "rate_per_second": 50}, headers=provider.h)
    room = await resp.json()
    assert room["state"] == "paused" and room["settings"]["rate_per_second"] == 50
    other, buyer = await factory.user("provider"), await factory.user()
    assert (await client.get(path, headers=other.h)).status == 404
    assert (await client.patch(path, json={"paused": False}, headers=other.h)).status == 404
    assert (await client.get(path, headers=buyer.h)).status == 403
    assert (await client.get(path)).status == 401
    for bad in ({"rate_per_second": 0}, {"difficulty": 40}, {"pass_seconds": 1}, {"x": 1}):
        assert (await client.patch(path, json=bad, headers=provider.h)).status == 422
    page = await client.get(f"/provider/events/{eid}/room", headers=provider.h)
    assert page.status == 200 and "Resume admitting" in await page.text()
    resp = await client.post(f"/provider/events/{eid}/room", data={"action": "resume"},
                             headers=provider.h, allow_redirects=False)
    assert resp.status == 303
    assert (await (await client.get(path, headers=provider.h)).json())["state"] == "open"
    resp = await client.post(f"/provider/events/{eid}/room", headers=provider.h, data={
        "action": "save", "rate_per_second": "abc", "difficulty": "3", "pass_seconds": "60"})
    assert resp.status == 422 and "Enter a number." in await resp.text()
    assert (await client.get(f"/provider/events/{eid}/room", headers=other.h)).status == 404
    resp = await client.patch(path, json={"enabled": False}, headers=provider.h)
    assert (await resp.json())["state"] == "off"
    assert (await client.get(f"/api/events/{eid}/room")).status == 200


async def test_the_admission_tick_runs_and_readyz_watches_it(client, factory, visitors):
    _, event, _ = await room_on_sale(factory, rate_per_second=1000)
    room = client.server.app[ROOM]
    for i in range(3):  # joined without any status read: only the background tick admits them
        assert (await room.join(event["id"], f"g:t{i}", f"{i:032x}", 2**42, "1.2.3.4", 0)).ok
    issued = room.keys.room(event["id"])[0]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while int(await room.runner.client.hget(issued, "issued") or 0) < 3:
        assert loop.time() < deadline, "the background tick admitted nobody"
        await asyncio.sleep(0.05)
    ready = await (await client.get("/readyz")).json()
    assert ready["checks"]["room"] == "ok"


async def test_a_used_pass_makes_no_second_basket_under_the_same_idempotency_key(
        client, factory, visitors):
    _, event, pkg = await room_on_sale(factory, rate_per_second=1000)
    eid, v = event["id"], visitors()
    assert (await v.join(eid))[1]["place"] == "admitted"
    key = {"Idempotency-Key": "k-1"}
    status, hold = await v.call("POST", f"/api/events/{eid}/holds", headers=key,
                                json={"items": [{"package_id": pkg["id"], "quantity": 1}]})
    assert status == 201
    assert (await v.call("DELETE", f"/api/holds/{hold['id']}", json={}))[0] == 204  # given back
    status, refused = await v.call("POST", f"/api/events/{eid}/holds", headers=key,
                                   json={"items": [{"package_id": pkg["id"], "quantity": 4}]})
    assert status == 403 and refused["error"] == "pass_used", refused
    assert (await v.call("GET", f"/api/events/{eid}/holds/mine"))[1] == []


async def test_checking_out_a_basket_the_pass_did_not_make_uses_the_pass(
        client, factory, visitors):
    provider, event, pkg = await room_on_sale(factory, rate_per_second=1000, enabled=False)
    eid, v = event["id"], visitors()
    body = {"items": [{"package_id": pkg["id"], "quantity": 2}]}
    status, early = await v.call("POST", f"/api/events/{eid}/holds", json=body)
    assert status == 201  # made while the room was off (or: a crash before the pass was marked)
    resp = await client.patch(f"/api/provider/events/{eid}/room", json={"enabled": True},
                              headers=provider.h)
    assert resp.status == 200
    assert (await v.join(eid))[1]["place"] == "admitted"
    status, order = await v.call("POST", f"/api/holds/{early['id']}/checkout", json=BILLING)
    assert status == 200, order  # the turn goes to this basket...
    assert (await v.call("POST", f"/api/orders/{order['order_number']}/cancel", json={}))[0] == 204
    status, refused = await v.call("POST", f"/api/events/{eid}/holds", json=body)
    assert status == 403 and refused["error"] == "pass_used", refused  # ...and makes no other


async def test_a_release_time_before_1970_is_a_release_long_past(client, factory, visitors):
    provider, event, _ = await room_on_sale(factory, rate_per_second=1000)
    path = f"/api/provider/events/{event['id']}/room"
    resp = await client.patch(path, json={"release_at": "1960-01-01T00:00:00Z"}, headers=provider.h)
    assert resp.status == 200 and (await resp.json())["state"] == "open", await resp.text()
    assert (await visitors().join(event["id"]))[1]["place"] == "admitted"


async def test_admissions_by_position_reads_are_counted_in_metrics(client, factory, visitors):
    """A position read ticks too: what it lets in is counted, not only the background ticker's."""
    from prometheus_client.parser import text_string_to_metric_families

    from engine.metrics import exposition

    def admitted() -> float:
        for family in text_string_to_metric_families(exposition().decode()):
            if family.name == "kwika_room_admitted":
                return sum(s.value for s in family.samples if s.name.endswith("_total"))
        return 0.0

    _, event, _ = await room_on_sale(factory, rate_per_second=1000)
    before = admitted()
    people = [visitors() for _ in range(3)]
    for person in people:  # each join answers with a status read, whose tick admits them
        assert (await person.join(event["id"]))[1]["place"] == "admitted"
    assert admitted() - before == 3
