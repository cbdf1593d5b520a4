"""The password policy: no common passwords, none equal to the email or name, none all spaces."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch

import pytest

from engine.passwords import COMMON_PASSWORDS, common_passwords, password_problem
from tests.conftest import ROOT
from tests.factories import PASSWORD


def test_the_bundled_list_is_large_and_ships_with_the_package():
    common = common_passwords()
    assert len(common) >= 10_000
    assert {"password", "iloveyou", "12345678", "qwertyuiop", "trustno1"} <= common
    assert not any(word.startswith("# ") for word in common)
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["engine"]
    assert any(fnmatch(COMMON_PASSWORDS.name, pattern) for pattern in package_data)


@pytest.mark.parametrize("password", [
    "password", "PASSWORD", "Password", "iloveyou", "12345678", "qwertyuiop", "football1",
    " password ",
])
def test_common_passwords_are_refused(password):
    problem = password_problem(password, email="ann@example.test", name="Ann", common=common_passwords())
    assert problem and "common" in problem


@pytest.mark.parametrize("password", [
    "longlocalpart@example.test", "LongLocalPart@Example.TEST", "longlocalpart", "LONGLOCALPART",
    "Chikondi Banda", "chikondi banda", "  Chikondi Banda ",
])
def test_the_email_its_local_part_and_the_name_are_refused(password):
    problem = password_problem(password, email="LongLocalPart@example.test", name="Chikondi Banda",
                               common=common_passwords())
    assert problem == "a password cannot be your email address or your name"


@pytest.mark.parametrize("password", [" " * 8, "\t" * 9, " \n \r \t  ", "\u00a0" * 8])
def test_all_whitespace_is_refused(password):
    assert password_problem(password, email="a@b.c", name="A", common=frozenset()) == \
        "a password cannot be only spaces"


@pytest.mark.parametrize("password", [PASSWORD, "Longlocalpart!", "Chikondi Banda 2", "kwika-demo-pass"])
def test_sound_passwords_pass(password):
    assert password_problem(password, email="longlocalpart@example.test", name="Chikondi Banda",
                            common=common_passwords()) is None


@pytest.mark.parametrize("change", [
    {"password": "iloveyou"},
    {"password": "Password1"},
    {"password": "sunshine-ann@example.test", "email": "sunshine-ann@example.test"},
    {"password": "sunshine-ann", "email": "sunshine-ann@example.test"},
    {"password": "Ann Sunshine", "name": "ann sunshine"},
    {"password": " " * 12},
])
async def test_registration_refuses_weak_passwords_and_creates_nothing(client, db, change):
    body = {"email": "ann@example.test", "name": "Ann", "password": PASSWORD, **change}
    resp = await client.post("/api/auth/register", json=body)
    assert resp.status == 422, await resp.text()
    err = await resp.json()
    assert set(err) == {"error", "message", "fields"}
    assert err["error"] == "weak_password"
    assert set(err["fields"]) == {"password"} and err["fields"]["password"] == err["message"]
    assert "Expected" not in err["message"]
    assert await db.fetchval("SELECT count(*) FROM users") == 0
