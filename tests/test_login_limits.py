"""Login and registration throttling over HTTP, from several client addresses.

Every 127.x.y.z address is this machine, so a client bound to 127.0.0.2 is another address to the
server: no proxy header and no mock is needed to be two people.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.exceptions import ResponseError
from yarl import URL

from engine.keys import Keys
from engine.lua import load_script
from storefront.app import create_app
from storefront.appkeys import ACCOUNTS
from tests.factories import PASSWORD, Factory

WRONG = "wrong password!"


@pytest.fixture
async def make_client(settings) -> AsyncIterator[Callable[..., Awaitable[TestClient]]]:
    """A test client of an app whose settings differ from the suite's by `overrides`."""
    made: list[TestClient] = []

    async def make(**overrides) -> TestClient:
        app = create_app(msgspec.structs.replace(settings, **overrides))
        test_client = TestClient(TestServer(app))
        await test_client.start_server()
        made.append(test_client)
        return test_client

    yield make
    for test_client in made:
        await test_client.close()


@asynccontextmanager
async def from_address(client: TestClient, address: str) -> AsyncIterator[aiohttp.ClientSession]:
    """A session to `client`'s server whose connections come from `address` (127.x.y.z)."""
    base = URL.build(scheme="http", host=client.host, port=client.port)
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with aiohttp.ClientSession(base_url=base, connector=connector) as session:
        yield session


async def login(session, email: str, password: str = PASSWORD) -> aiohttp.ClientResponse:
    resp = await session.post("/api/auth/login", json={"email": email, "password": password})
    await resp.read()
    return resp


async def code_of(resp) -> str:
    body = await resp.json()
    assert set(body) == {"error", "message", "fields"}, body
    return body["error"]


def retry_after(resp) -> int:
    value = int(resp.headers["Retry-After"])
    assert value >= 1
    return value


async def test_an_attacker_failing_50_times_does_not_lock_the_real_user_out(client, factory, settings):
    victim = await factory.user("admin")
    own = await factory.user()
    limit = settings.login_failures_per_account_ip
    async with from_address(client, "127.0.0.2") as attacker:
        answers = [await login(attacker, victim.user["email"], f"guess {i}") for i in range(50)]
        assert [a.status for a in answers] == [401] * limit + [429] * (50 - limit)
        assert {await code_of(a) for a in answers[limit:]} == {"too_many_attempts"}
        assert all(0 < retry_after(a) <= settings.login_failure_window_seconds for a in answers[limit:])
        right = await login(attacker, victim.user["email"])  # even the right password, from there
        assert right.status == 429 and await code_of(right) == "too_many_attempts"
        assert (await login(attacker, own.user["email"])).status == 200  # its other accounts work
    resp = await login(client, victim.user["email"])  # the real user, elsewhere
    assert resp.status == 200, await resp.text()


async def test_parallel_guesses_never_exceed_the_limit(client, factory, settings):
    actor = await factory.user()
    limit = settings.login_failures_per_account_ip
    answers = await asyncio.gather(*(login(client, actor.user["email"], f"guess number {i}")
                                     for i in range(3 * limit)))
    codes = [await code_of(a) for a in answers]
    assert codes.count("bad_credentials") == limit, codes
    assert codes.count("too_many_attempts") == 2 * limit
    assert {a.status for a in answers if a.status != 401} == {429}
    assert (await login(client, actor.user["email"])).status == 429


async def test_a_successful_login_forgives_that_address(client, factory, settings, rds):
    actor = await factory.user()
    email, limit = actor.user["email"], settings.login_failures_per_account_ip
    keys = Keys(settings.redis_prefix)
    for round_ in (1, 2):
        for _ in range(limit - 1):
            assert (await login(client, email, WRONG)).status == 401
        assert (await login(client, email)).status == 200
        assert await rds.exists(keys.login_address(email, "127.0.0.1")) == 0
        # the account keeps its failures (they may have come from an attacker), not the success
        assert int(await rds.hget(keys.login_account(email), "fails")) == round_ * (limit - 1)
        client.session.cookie_jar.clear()
    assert await rds.sismember(keys.login_known(email), "127.0.0.1")


async def test_an_unknown_email_is_throttled_like_a_real_one(client, factory, settings):
    """The limits answer the same whether an account exists, so they reveal nothing."""
    real = await factory.user()
    limit = settings.login_failures_per_account_ip
    for email in (real.user["email"], "nobody-here@example.test"):
        answers = [await login(client, email, WRONG) for _ in range(limit + 1)]
        assert [a.status for a in answers] == [401] * limit + [429]
        assert [await code_of(a) for a in answers[-2:]] == ["bad_credentials", "too_many_attempts"]


async def test_logins_per_address_are_limited_exactly(make_client):
    app_client = await make_client(login_per_ip_per_minute=5)
    emails = [f"nobody{i}@example.test" for i in range(8)]
    answers = await asyncio.gather(*(login(app_client, e, WRONG) for e in emails))
    assert sorted(a.status for a in answers) == [401] * 5 + [429] * 3
    for refused in (a for a in answers if a.status == 429):
        assert await code_of(refused) == "rate_limited"
        assert retry_after(refused) <= 60
    actor = await Factory(app_client).user()  # another address is not affected
    async with from_address(app_client, "127.0.0.3") as elsewhere:
        assert (await login(elsewhere, actor.user["email"])).status == 200


async def test_registrations_per_address_are_limited_exactly(make_client, db):
    app_client = await make_client(register_per_ip_per_minute=3)
    bodies = [{"email": f"new{i}@example.test", "name": f"New {i}", "password": PASSWORD}
              for i in range(5)]
    answers = await asyncio.gather(*(app_client.post("/api/auth/register", json=b) for b in bodies))
    assert sorted(a.status for a in answers) == [201] * 3 + [429] * 2
    for refused in (a for a in answers if a.status == 429):
        assert await code_of(refused) == "rate_limited"
        assert retry_after(refused) <= 60
    assert await db.fetchval("SELECT count(*) FROM users") == 3
    async with from_address(app_client, "127.0.0.4") as elsewhere:
        resp = await elsewhere.post("/api/auth/register", json={
            "email": "elsewhere@example.test", "name": "Elsewhere", "password": PASSWORD})
        assert resp.status == 201


async def test_many_addresses_failing_slow_the_account_for_new_addresses_only(
        make_client, settings, rds):
    app_client = await make_client(login_slowdown_after=3, login_slowdown_max_seconds=60)
    actor = await Factory(app_client).user()
    email = actor.user["email"]
    assert (await login(app_client, email)).status == 200  # 127.0.0.1 is now a known address
    app_client.session.cookie_jar.clear()
    for n in range(2, 6):  # four addresses, one failure each: the fourth passes the threshold
        async with from_address(app_client, f"127.0.1.{n}") as bot:
            assert (await login(bot, email, WRONG)).status == 401
    async with from_address(app_client, "127.0.2.1") as new_place:
        slowed = await login(new_place, email)  # the right password, from a new address
        assert slowed.status == 429 and await code_of(slowed) == "too_many_attempts"
        assert retry_after(slowed) == 1
    assert (await login(app_client, email)).status == 200  # a known address is not slowed

    # each failure past the threshold doubles the wait, up to the maximum. Time is moved on by
    # clearing the stored moment of the next allowed check (the script reads Redis's clock).
    account = Keys(settings.redis_prefix).login_account(email)
    for n, expected in ((1, 2), (2, 4)):
        await rds.hset(account, "next_ms", 0)
        async with from_address(app_client, f"127.0.3.{n}") as bot:
            assert (await login(bot, email, WRONG)).status == 401
        async with from_address(app_client, "127.0.2.1") as new_place:
            assert retry_after(await login(new_place, email)) == expected
    await rds.hset(account, mapping={"fails": 500, "next_ms": 0})
    async with from_address(app_client, "127.0.3.9") as bot:
        assert (await login(bot, email, WRONG)).status == 401
    async with from_address(app_client, "127.0.2.1") as new_place:
        assert retry_after(await login(new_place, email)) == 60
        await rds.hset(account, "next_ms", 0)
        assert (await login(new_place, email)).status == 200  # it gets through in the end


async def test_password_work_beyond_the_gate_answers_503_with_retry_after(make_client, db):
    app_client = await make_client(password_hash_concurrency=1, password_hash_queue=0)
    actor = await Factory(app_client).user()
    gate = app_client.server.app[ACCOUNTS].passwords.gate
    release = threading.Event()
    blocker = asyncio.create_task(gate.run(release.wait))
    try:
        await asyncio.sleep(0)  # let it take the one slot (no waiting: it takes it at once)
        assert gate.running == 1
        resp = await login(app_client, actor.user["email"])
        assert resp.status == 503 and await code_of(resp) == "busy" and retry_after(resp) == 1
        users = await db.fetchval("SELECT count(*) FROM users")
        resp = await app_client.post("/api/auth/register", json={
            "email": "later@example.test", "name": "Later", "password": PASSWORD})
        assert resp.status == 503 and await code_of(resp) == "busy" and retry_after(resp) == 1
        assert await db.fetchval("SELECT count(*) FROM users") == users
        assert (await app_client.get("/api/events")).status == 200  # the rest of the site is fine
    finally:
        release.set()
        await blocker
    assert (await login(app_client, actor.user["email"])).status == 200


async def test_login_limits_survive_a_script_flush(client, factory, rds):
    actor = await factory.user()
    await rds.script_flush()
    assert (await login(client, actor.user["email"], WRONG)).status == 401
    assert (await login(client, actor.user["email"])).status == 200
    client.session.cookie_jar.clear()  # anonymous again (a session's writes need its CSRF token)
    resp = await client.post("/api/auth/register", json={
        "email": "flushed@example.test", "name": "Flushed", "password": PASSWORD})
    assert resp.status == 201


@pytest.mark.parametrize("args", [["0", "60000"], ["-1", "60000"], ["1.5", "60000"], ["x", "60000"],
                                  ["5", "0"], ["5", "2.5"], ["5", ""]])
async def test_attempt_window_checks_its_input_before_writing(rds, settings, args):
    script = rds.register_script(load_script("attempt_window").source)
    key = f"{settings.redis_prefix}:attempts:test:{uuid.uuid4().hex}"
    with pytest.raises(ResponseError, match="attempt_window"):
        await script(keys=[key], args=args)
    assert await rds.exists(key) == 0


@pytest.mark.parametrize("name, args", [
    ("login_attempt", ["", 10, 900000, 20, 60000]),
    ("login_attempt", ["1.2.3.4", 0, 900000, 20, 60000]),
    ("login_attempt", ["1.2.3.4", 10, "1.5", 20, 60000]),
    ("login_attempt", ["1.2.3.4", 10, 900000, "x", 60000]),
    ("login_attempt", ["1.2.3.4", 10, 900000, 20, -5]),
    ("login_succeeded", ["", 1000, 20]),
    ("login_succeeded", ["1.2.3.4", 0, 20]),
    ("login_succeeded", ["1.2.3.4", 1000, "2.5"]),
])
async def test_login_scripts_check_their_input_before_writing(rds, settings, name, args):
    script = rds.register_script(load_script(name).source)
    keys = Keys(settings.redis_prefix)
    email = f"{uuid.uuid4().hex}@example.test"
    account_keys = [keys.login_address(email, "1.2.3.4"), keys.login_account(email),
                    keys.login_known(email)]
    with pytest.raises(ResponseError, match=name):
        await script(keys=account_keys, args=args)
    assert await rds.exists(*account_keys) == 0


def test_the_throttle_settings_come_from_the_environment():
    from engine.settings import SettingsError, load_settings

    env = {"KWIKA_LOGIN_PER_IP_PER_MINUTE": "7", "KWIKA_REGISTER_PER_IP_PER_MINUTE": "3",
           "KWIKA_LOGIN_FAILURES_PER_ACCOUNT_IP": "4", "KWIKA_LOGIN_FAILURE_WINDOW": "120",
           "KWIKA_LOGIN_SLOWDOWN_AFTER": "9", "KWIKA_LOGIN_SLOWDOWN_MAX": "30",
           "KWIKA_PASSWORD_HASH_CONCURRENCY": "3", "KWIKA_PASSWORD_HASH_QUEUE": "0"}
    settings = load_settings(env)
    assert (settings.login_per_ip_per_minute, settings.register_per_ip_per_minute,
            settings.login_failures_per_account_ip, settings.login_failure_window_seconds,
            settings.login_slowdown_after, settings.login_slowdown_max_seconds,
            settings.password_hash_concurrency, settings.password_hash_queue) == (7, 3, 4, 120, 9, 30, 3, 0)
    defaults = load_settings({})  # the production defaults the README states
    assert (defaults.login_per_ip_per_minute, defaults.register_per_ip_per_minute,
            defaults.login_failures_per_account_ip, defaults.login_failure_window_seconds,
            defaults.login_slowdown_after, defaults.login_slowdown_max_seconds,
            defaults.password_hash_concurrency, defaults.password_hash_queue) == (60, 20, 10, 900, 20, 60, 2, 32)
    for var in ("KWIKA_PASSWORD_HASH_CONCURRENCY", "KWIKA_LOGIN_PER_IP_PER_MINUTE"):
        with pytest.raises(SettingsError, match=var):
            load_settings({var: "0"})
