"""Migrations against a throwaway database of each test's own."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from engine.db import MIGRATIONS_DIR, MigrationError, discover, migrate
from tests.conftest import with_database


@pytest.fixture
async def fresh_db(settings) -> AsyncIterator[str]:
    """An empty database on the test server, dropped afterwards."""
    name = f"kwika_mig_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(with_database(settings.database_url, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(settings.database_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def conn(fresh_db: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(fresh_db)
    yield c
    await c.close()


def write(folder: Path, name: str, sql: str) -> Path:
    path = folder / name
    path.write_text(sql, encoding="utf-8")
    return path


async def recorded(conn: asyncpg.Connection) -> list[tuple[int, str, str]]:
    rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
    return [(r["version"], r["name"], r["checksum"]) for r in rows]


async def table_exists(conn: asyncpg.Connection, name: str) -> bool:
    return await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"public.{name}")


async def lock_is_free(url: str) -> bool:
    other = await asyncpg.connect(url)
    try:
        got = await other.fetchval("SELECT pg_try_advisory_lock($1)", 0x4B57494B41)
        if got:
            await other.execute("SELECT pg_advisory_unlock($1)", 0x4B57494B41)
        return got
    finally:
        await other.close()


async def test_applies_every_file_in_order_and_records_it(conn):
    files = discover()
    assert files, "the project has migrations"
    assert [m.version for m in files] == sorted(m.version for m in files)
    applied = await migrate(conn)
    assert applied == [m.name for m in files]
    assert await recorded(conn) == [
        (m.version, m.name, hashlib.sha256((MIGRATIONS_DIR / m.name).read_bytes()).hexdigest())
        for m in files]
    for table in ("users", "service_providers", "api_tokens", "events"):
        assert await table_exists(conn, table), table


async def test_second_run_applies_nothing(conn):
    await migrate(conn)
    before = await recorded(conn)
    assert await migrate(conn) == []
    assert await recorded(conn) == before


async def test_order_follows_the_version_not_the_file_system(conn, tmp_path):
    write(tmp_path, "0010_third.sql", "INSERT INTO seq (step) VALUES ('0010');")
    write(tmp_path, "0002_second.sql", "INSERT INTO seq (step) VALUES ('0002');")
    write(tmp_path, "0001_first.sql", "CREATE TABLE seq (n serial, step text);")
    write(tmp_path, "README.txt", "not a migration")
    assert await migrate(conn, tmp_path) == ["0001_first.sql", "0002_second.sql", "0010_third.sql"]
    assert [r["step"] for r in await conn.fetch("SELECT step FROM seq ORDER BY n")] == ["0002", "0010"]


async def test_new_files_are_applied_on_the_next_run(conn, tmp_path):
    write(tmp_path, "0001_a.sql", "CREATE TABLE a (id int);")
    assert await migrate(conn, tmp_path) == ["0001_a.sql"]
    write(tmp_path, "0002_b.sql", "CREATE TABLE b (id int);")
    assert await migrate(conn, tmp_path) == ["0002_b.sql"]
    assert [r[0] for r in await recorded(conn)] == [1, 2]


async def test_concurrent_runs_apply_each_migration_once(fresh_db, tmp_path):
    write(tmp_path, "0001_counter.sql",
          "CREATE TABLE applied_log (name text NOT NULL);"
          "INSERT INTO applied_log VALUES ('0001');")
    for n in range(2, 8):
        # not idempotent: a second application would fail on the table or duplicate the row
        write(tmp_path, f"{n:04d}_step.sql",
              f"CREATE TABLE t{n} (id int); INSERT INTO applied_log VALUES ('{n:04d}');")
    a, b = await asyncpg.connect(fresh_db), await asyncpg.connect(fresh_db)
    try:
        done_a, done_b = await asyncio.gather(migrate(a, tmp_path), migrate(b, tmp_path))
        all_names = sorted(p.name for p in tmp_path.glob("*.sql"))
        assert sorted(done_a + done_b) == all_names
        assert not set(done_a) & set(done_b)
        rows = await a.fetch("SELECT name FROM applied_log ORDER BY name")
        assert [r["name"] for r in rows] == [f"{n:04d}" for n in range(1, 8)]
        assert len(await recorded(a)) == 7
    finally:
        await a.close()
        await b.close()
    assert await lock_is_free(fresh_db)


async def test_concurrent_runs_of_the_real_migrations(fresh_db):
    conns = [await asyncpg.connect(fresh_db) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        names = [name for r in results for name in r]
        assert sorted(names) == [m.name for m in discover()]
        assert len(await recorded(conns[0])) == len(discover())
    finally:
        for c in conns:
            await c.close()


async def test_a_changed_applied_file_is_refused(conn, tmp_path, fresh_db):
    write(tmp_path, "0001_a.sql", "CREATE TABLE a (id int);")
    first = write(tmp_path, "0002_b.sql", "CREATE TABLE b (id int);")
    await migrate(conn, tmp_path)
    first.write_text("CREATE TABLE b (id bigint);", encoding="utf-8")
    write(tmp_path, "0003_c.sql", "CREATE TABLE c (id int);")
    with pytest.raises(MigrationError, match="0002_b.sql"):
        await migrate(conn, tmp_path)
    assert not await table_exists(conn, "c")  # nothing new is applied over a changed history
    assert [r[0] for r in await recorded(conn)] == [1, 2]
    assert await lock_is_free(fresh_db)


async def test_a_changed_file_is_refused_before_earlier_new_files_apply(conn, tmp_path):
    write(tmp_path, "0001_a.sql", "CREATE TABLE a (id int);")
    later = write(tmp_path, "0005_e.sql", "CREATE TABLE e (id int);")
    await migrate(conn, tmp_path)
    write(tmp_path, "0003_c.sql", "CREATE TABLE c (id int);")
    later.write_text("CREATE TABLE e (id text);", encoding="utf-8")
    with pytest.raises(MigrationError, match="0005_e.sql"):
        await migrate(conn, tmp_path)
    assert not await table_exists(conn, "c")


@pytest.mark.parametrize("bad", ["1_short.sql", "0002-dash.sql", "0002_Upper.sql", "abcd_x.sql",
                                 "00002_five.sql", "0002_.sql", "0002_sp ace.sql"])
async def test_a_badly_named_file_is_refused(conn, tmp_path, bad):
    write(tmp_path, "0001_ok.sql", "CREATE TABLE ok (id int);")
    write(tmp_path, bad, "SELECT 1;")
    with pytest.raises(MigrationError):
        await migrate(conn, tmp_path)
    assert not await table_exists(conn, "ok")  # refused before anything ran


async def test_two_files_with_one_version_are_refused(conn, tmp_path):
    write(tmp_path, "0001_a.sql", "CREATE TABLE a (id int);")
    write(tmp_path, "0001_b.sql", "CREATE TABLE b (id int);")
    with pytest.raises(MigrationError, match="version"):
        await migrate(conn, tmp_path)


async def test_a_failing_migration_rolls_back_and_is_not_recorded(conn, tmp_path, fresh_db):
    write(tmp_path, "0001_ok.sql", "CREATE TABLE ok (id int);")
    write(tmp_path, "0002_broken.sql",
          "CREATE TABLE partial (id int); INSERT INTO partial VALUES (1);"
          "INSERT INTO no_such_table VALUES (1);")
    write(tmp_path, "0003_after.sql", "CREATE TABLE after_broken (id int);")
    with pytest.raises(MigrationError, match="0002_broken.sql"):
        await migrate(conn, tmp_path)
    assert await table_exists(conn, "ok")
    assert not await table_exists(conn, "partial")
    assert not await table_exists(conn, "after_broken")
    assert [r[1] for r in await recorded(conn)] == ["0001_ok.sql"]
    assert await lock_is_free(fresh_db)
    # the connection is usable and a fixed file applies on the next run
    write(tmp_path, "0002_broken.sql", "CREATE TABLE partial (id int);")
    assert await migrate(conn, tmp_path) == ["0002_broken.sql", "0003_after.sql"]
