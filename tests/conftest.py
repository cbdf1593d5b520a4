"""Test harness: real Redis and Postgres (configured by REDIS_URL / DATABASE_URL, else embedded),
one fresh database per test session, a Redis key prefix and empty tables per test."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient, TestServer

from engine.db import migrate
from engine.embedded import Services, ensure_services
from engine.settings import Settings, load_settings
from storefront.app import create_app
from tests.browser import CHROMIUM, CHROMIUM_ARGS, REPORT_CSP_VIOLATIONS, Console
from tests.factories import Factory

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    # each xdist worker (`./dev test` runs two) has embedded servers of its own when none is set
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    found = ensure_services(ROOT / ".kwika" / "test" / worker, os.environ.get("REDIS_URL"),
                            os.environ.get("DATABASE_URL"))
    yield found
    found.close()


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
async def database_url(services: Services) -> AsyncIterator[str]:
    """A database of this test session's own, migrated once, dropped at the end."""
    name = f"kwika_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(with_database(services.database_url, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(services.database_url, name)
    conn = await asyncpg.connect(url)
    await migrate(conn)
    await conn.close()
    yield url
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest.fixture(scope="session")
async def tables(database_url: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    rows = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'")
    await conn.close()
    return [r["tablename"] for r in rows]


def fresh_settings(services: Services, database_url: str) -> Settings:
    """Settings with a Redis key prefix of their own (cheap password hashing for tests)."""
    return load_settings({}, redis_url=services.redis_url, database_url=database_url,
                         redis_prefix=f"kwt{uuid.uuid4().hex[:10]}",
                         secret_key="test-secret-key-0123456789",
                         argon2_memory_kib=1024, argon2_time_cost=1, log_json=False,
                         # every test client is 127.0.0.1: per-address login limits are lifted
                         # here (tests of those limits set their own)
                         login_per_ip_per_minute=100_000, register_per_ip_per_minute=100_000)


async def clean_up(settings: Settings, tables: list[str]) -> None:
    """Empty the tables and delete the Redis keys of `settings`' prefix.

    Most tests touch few tables: one query finds the ones with rows, which are emptied with
    DELETE (foreign-key triggers off for this transaction) and every used sequence starts
    again. A TRUNCATE costs ~0.1-0.3 s whatever the size, which was most of the suite's time."""
    conn = await asyncpg.connect(settings.database_url)
    probe = " UNION ALL ".join(f"(SELECT '{t}'::text FROM {t} LIMIT 1)" for t in tables)
    used = [row[0] for row in await conn.fetch(probe)]
    if used:
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute("".join(f"DELETE FROM {t};" for t in used))
    await conn.execute("SELECT setval(format('%I.%I', schemaname, sequencename), start_value, false) "
                       "FROM pg_sequences WHERE last_value IS NOT NULL")
    await conn.close()
    client = redis.Redis.from_url(settings.redis_url)
    keys = [k async for k in client.scan_iter(match=f"{settings.redis_prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def settings(services: Services, database_url: str, tables: list[str]) -> AsyncIterator[Settings]:
    """Settings for one test: its own Redis key prefix; tables emptied after the test."""
    settings = fresh_settings(services, database_url)
    yield settings
    await clean_up(settings, tables)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=5)
    yield pool
    await pool.close()


@pytest.fixture
async def rds(settings: Settings) -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient]:
    app = create_app(settings)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.fixture
async def factory(client: TestClient) -> Factory:
    return Factory(client)


@pytest.fixture(autouse=True)
async def _no_task_left_behind() -> AsyncIterator[None]:
    """Fail a test whose background task died with an exception nobody looked at."""
    errors: list[dict] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield
    loop.set_exception_handler(previous)
    assert not errors, f"unhandled errors in background tasks: {errors}"


# --- pages in Chromium (tests/browser.py) ----------------------------------------------------
@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    pw = pytest.importorskip("playwright.async_api", reason="page tests need playwright")
    async with pw.async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
async def page(browser: Any, client: TestClient, console: Console) -> AsyncIterator[Any]:
    """A page in a fresh context whose base URL is the app, served on a real port. The test
    fails on any JavaScript error, console error or Content-Security-Policy violation (unless
    it `console.allow`s it)."""
    context = await browser.new_context(base_url=str(client.make_url("")).rstrip("/"),
                                        accept_downloads=True)
    context.set_default_timeout(10_000)
    await context.add_init_script(REPORT_CSP_VIOLATIONS)
    tab = await context.new_page()
    tab.on("pageerror", lambda exc: console.errors.append((f"JavaScript error: {exc}", "")))
    tab.on("response", console.on_response)
    tab.on("console", console.on_console)
    yield tab
    await context.close()
    assert not console.unexpected(), f"errors on the page: {console.unexpected()}"


SLOW_FIRST = ("test_load_scenarios.py", "test_cli_up.py")


def pytest_collection_modifyitems(items: list) -> None:
    """The few long files (Locust runs, `kwika up` starts) go first, so pytest-xdist hands them
    out at the start and the other workers run the rest meanwhile, instead of one worker
    finishing a three-minute file alone at the end."""
    items.sort(key=lambda item: item.path.name not in SLOW_FIRST)  # stable: order kept otherwise
