"""Ticket signing keys in configuration: KWIKA_TICKET_SIGNING_KEYS, `kwika keys`, the key `kwika
up` keeps, and the well-known route that serves the public keys (and never a private one)."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from engine.settings import Secret, SettingsError, load_settings
from engine.tickets import Keyring, TicketClaims, new_ticket_number, sign_ticket, verify_ticket
from kwika.cli import _persistent_ticket_keys
from storefront.app import create_app
from storefront.ticket_keys import PATH

TWO_KEYS = Keyring.parse(Keyring.generate("NEW").to_text() + "," + Keyring.generate("OLD").to_text())


def kwika_keys(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kwika.cli", "keys", *args], check=False,
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})


def test_kwika_keys_prints_a_working_keyring():
    done = kwika_keys()
    assert done.returncode == 0, done.stderr
    first, public_line = done.stdout.splitlines()[:2]
    name, _, value = first.partition("=")
    assert name == "KWIKA_TICKET_SIGNING_KEYS"
    keyring = load_settings({name: value})  # what the environment would give
    ring = Keyring.parse(keyring.ticket_signing_keys)
    kid = ring.current_kid
    assert ring.kids == (kid,)
    assert public_line == f"# public key {kid} (Ed25519, base64): {ring.public_key_text(kid)}"
    claims = TicketClaims(ticket_number=new_ticket_number(5), event_id=5)
    assert verify_ticket(ring.public_keys, sign_ticket(ring, claims)).key_id == kid
    again = Keyring.parse(kwika_keys().stdout.splitlines()[0].partition("=")[2])
    assert again.to_text() != ring.to_text()  # fresh every time


def test_kwika_keys_with_a_key_id():
    done = kwika_keys("--kid", "k2027")
    assert done.stdout.startswith("KWIKA_TICKET_SIGNING_KEYS=K2027:")
    bad = kwika_keys("--kid", "not-a-kid")
    assert bad.returncode == 2 and "1-8 of A-Z and 0-9" in bad.stderr and not bad.stdout


def test_setting_is_a_secret_and_checked():
    settings = load_settings({"KWIKA_TICKET_SIGNING_KEYS": TWO_KEYS.to_text()})
    assert Keyring.parse(settings.ticket_signing_keys).kids == ("NEW", "OLD")
    assert isinstance(settings.ticket_signing_keys, Secret)
    for private in TWO_KEYS.to_text().split(","):
        assert private.split(":")[1] not in repr(settings)
    with pytest.raises(SettingsError, match="KWIKA_TICKET_SIGNING_KEYS is malformed") as caught:
        load_settings({"KWIKA_TICKET_SIGNING_KEYS": "K1:c2VjcmV0LXN0dWZm"})
    assert "c2VjcmV0LXN0dWZm" not in str(caught.value)


def test_tickets_folder_and_render_workers_settings(tmp_path: Path):
    assert load_settings({"KWIKA_DATA_DIR": "/srv/kw"}).tickets_path == Path("/srv/kw/tickets")
    settings = load_settings({"KWIKA_TICKETS_DIR": str(tmp_path), "KWIKA_TICKET_RENDER_WORKERS": "3"})
    assert settings.tickets_path == tmp_path and settings.ticket_render_workers == 3
    assert load_settings({}).ticket_render_workers == 0  # one per CPU
    with pytest.raises(SettingsError, match="KWIKA_TICKET_RENDER_WORKERS"):
        load_settings({"KWIKA_TICKET_RENDER_WORKERS": "-1"})


def test_up_keeps_one_development_key(tmp_path: Path):
    settings = load_settings({})
    first = _persistent_ticket_keys(settings, tmp_path)
    path = tmp_path / "ticket_signing_keys"
    assert path.stat().st_mode & 0o777 == 0o600
    assert Keyring.parse(first.ticket_signing_keys).current_kid
    assert _persistent_ticket_keys(settings, tmp_path).ticket_signing_keys == first.ticket_signing_keys
    configured = msgspec.structs.replace(settings, ticket_signing_keys=Secret(TWO_KEYS.to_text()))
    assert _persistent_ticket_keys(configured, tmp_path) is configured  # the environment wins


@pytest.fixture
async def keyed_client(settings) -> AsyncIterator[TestClient]:
    app = create_app(msgspec.structs.replace(
        settings, ticket_signing_keys=Secret(TWO_KEYS.to_text())))
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_well_known_route_serves_public_keys_only(keyed_client):
    resp = await keyed_client.get(PATH)
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert "max-age" in resp.headers["Cache-Control"]
    text = await resp.text()
    for private in TWO_KEYS.to_text().split(","):
        secret = private.split(":")[1]
        assert secret not in text
        assert base64.b64encode(base64.urlsafe_b64decode(secret + "=")).decode() not in text
    document = msgspec.json.decode(text)
    assert document["version"] == 1 and document["payload_format"] == "KW1"
    assert [(k["kid"], k["alg"], k["current"]) for k in document["keys"]] == \
        [("NEW", "Ed25519", True), ("OLD", "Ed25519", False)]
    # what it serves is enough to verify a ticket offline
    keys = {k["kid"]: Ed25519PublicKey.from_public_bytes(base64.b64decode(k["public_key"]))
            for k in document["keys"]}
    payload = sign_ticket(TWO_KEYS, TicketClaims(ticket_number="TKT-3-ABCDEF", event_id=3))
    assert verify_ticket(keys, payload).key_id == "NEW"


async def test_well_known_route_without_keys(client):
    resp = await client.get(PATH)
    assert resp.status == 200
    assert (await resp.json())["keys"] == []
