"""The signed ticket payload (engine/tickets/payload.py, format KW1) and its keyring: pure, no
servers. A payload verifies only as signed; anything else, however hostile, raises one of the
three ticket errors and nothing else."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine.tickets import (
    ForgedTicket,
    InvalidTicket,
    Keyring,
    KeyringError,
    MalformedTicket,
    NoSigningKey,
    TicketClaims,
    UnknownKey,
    new_ticket_number,
    sign_ticket,
    verify_ticket,
)
from engine.tickets.payload import MAX_GENERATION, MAX_ID, MAX_PAYLOAD

KEYRING = Keyring.generate("K1")
KEYS = KEYRING.public_keys
CLAIMS = TicketClaims(ticket_number="TKT-42-7K3M9QX2HD4P", event_id=42, seat_id=1234, generation=1)
PAYLOAD = sign_ticket(KEYRING, CLAIMS)
QR_ALPHANUMERIC = re.compile(r"[0-9A-Z $%*+\-./:]+")


def claims_of(verified) -> TicketClaims:
    return TicketClaims(ticket_number=verified.ticket_number, event_id=verified.event_id,
                        seat_id=verified.seat_id, generation=verified.generation)


def test_round_trip_and_layout():
    verified = verify_ticket(KEYS, PAYLOAD)
    assert claims_of(verified) == CLAIMS
    assert (verified.key_id, verified.version) == ("K1", 1)
    head, signature = PAYLOAD.rsplit(".", 1)
    assert head == "KW1.K1.42.7K3M9QX2HD4P.1234.1"
    assert len(signature) == 103
    assert QR_ALPHANUMERIC.fullmatch(PAYLOAD)  # QR alphanumeric mode, not byte mode
    assert verify_ticket(KEYS, PAYLOAD.encode()) == verified  # bytes as a scanner reads them


def test_general_admission_and_deterministic():
    ga = TicketClaims(ticket_number="TKT-7-ABCD", event_id=7)
    payload = sign_ticket(KEYRING, ga)
    assert ".7.ABCD..1." in payload
    assert verify_ticket(KEYS, payload).seat_id is None
    assert sign_ticket(KEYRING, ga) == payload  # Ed25519 is deterministic: a re-render matches


def test_a_new_generation_is_a_different_payload():
    transferred = TicketClaims(ticket_number=CLAIMS.ticket_number, event_id=42, seat_id=1234,
                               generation=2)
    replacement = sign_ticket(KEYRING, transferred)
    assert replacement != PAYLOAD
    assert verify_ticket(KEYS, replacement).generation == 2
    assert verify_ticket(KEYS, PAYLOAD).generation == 1  # still genuine: revocation is a list


def test_new_ticket_numbers():
    numbers = {new_ticket_number(42) for _ in range(1000)}
    assert len(numbers) == 1000
    for number in numbers:
        assert re.fullmatch(r"TKT-42-[0-9A-HJKMNP-TV-Z]{12}", number)
        claims = TicketClaims(ticket_number=number, event_id=42)
        assert verify_ticket(KEYS, sign_ticket(KEYRING, claims)).ticket_number == number
    for bad in (0, -1, MAX_ID + 1, True, "42", None):
        with pytest.raises(ValueError):
            new_ticket_number(bad)


@pytest.mark.parametrize("claims", [
    TicketClaims(ticket_number="TKT-43-ABCD", event_id=42),  # number of another event
    TicketClaims(ticket_number="TKT-42-abcd", event_id=42),  # lowercase
    TicketClaims(ticket_number="TKT-42-AB", event_id=42),  # serial too short
    TicketClaims(ticket_number="TKT-042-ABCD", event_id=42),
    TicketClaims(ticket_number="TKT-42-ABCD.1", event_id=42),
    TicketClaims(ticket_number="TKT-0-ABCD", event_id=0),
    TicketClaims(ticket_number="TKT-42-ABCD", event_id=42, seat_id=0),
    TicketClaims(ticket_number="TKT-42-ABCD", event_id=42, seat_id=MAX_ID + 1),
    TicketClaims(ticket_number="TKT-42-ABCD", event_id=42, generation=-1),
    TicketClaims(ticket_number="TKT-42-ABCD", event_id=42, generation=MAX_GENERATION + 1),
    TicketClaims(ticket_number="TKT-42-ABCD", event_id=42, generation=True),
    TicketClaims(ticket_number="TKT-42-ABCD", event_id=True),
])
def test_claims_outside_the_format_are_refused_at_signing(claims):
    with pytest.raises(ValueError):
        sign_ticket(KEYRING, claims)


def test_extremes_fit():
    claims = TicketClaims(ticket_number=f"TKT-{MAX_ID}-{'Z' * 24}", event_id=MAX_ID,
                          seat_id=MAX_ID, generation=MAX_GENERATION)
    payload = sign_ticket(Keyring.generate("ABCDEFGH"), claims)
    assert len(payload) <= MAX_PAYLOAD


def test_another_keys_signature_is_forged():
    impostor = Keyring.generate("K1")  # same key id, another key
    with pytest.raises(ForgedTicket):
        verify_ticket(KEYS, sign_ticket(impostor, CLAIMS))


def test_an_unknown_key_id():
    stranger = Keyring.generate("K9")
    with pytest.raises(UnknownKey):
        verify_ticket(KEYS, sign_ticket(stranger, CLAIMS))
    with pytest.raises(UnknownKey):
        verify_ticket({}, PAYLOAD)


def test_rotation_old_tickets_still_verify():
    rotated = Keyring.parse(Keyring.generate("K2").to_text() + "," + KEYRING.to_text())
    assert rotated.current_kid == "K2"
    new = sign_ticket(rotated, CLAIMS)
    assert new.startswith("KW1.K2.")
    assert verify_ticket(rotated.public_keys, new).key_id == "K2"
    assert verify_ticket(rotated.public_keys, PAYLOAD).key_id == "K1"
    with pytest.raises(UnknownKey):  # a gate that only knows the old key
        verify_ticket(KEYS, new)


def test_unsupported_version_and_not_ours():
    for text in ("KW2" + PAYLOAD[3:], "XX1" + PAYLOAD[3:], "", ".", "KW1", "TKT-42-7K3M9QX2HD4P"):
        with pytest.raises(MalformedTicket):
            verify_ticket(KEYS, text)


def test_strict_text():
    for text in (PAYLOAD + "\n", " " + PAYLOAD, PAYLOAD.lower(), PAYLOAD + "=",
                 PAYLOAD.replace(".42.", ".042."), PAYLOAD.replace(".1234.", ".01234.")):
        with pytest.raises(InvalidTicket):
            verify_ticket(KEYS, text)


def test_non_canonical_signature_text_is_refused():
    head, signature = PAYLOAD.rsplit(".", 1)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    last = alphabet.index(signature[-1])
    for other in range(32):  # the last character's 3 unused bits must be zero
        if other != last:
            with pytest.raises(InvalidTicket):
                verify_ticket(KEYS, f"{head}.{signature[:-1]}{alphabet[other]}")


@pytest.mark.parametrize("hostile", [None, 42, 4.2, [PAYLOAD], {"p": PAYLOAD}, object(),
                                     bytearray(PAYLOAD.encode()) + b"\xff", "é" * 10, "\ud800",
                                     PAYLOAD * 2, "." * 150, "KW1." + "." * 6])
def test_hostile_objects(hostile):
    with pytest.raises(InvalidTicket):
        verify_ticket(KEYS, hostile)


# --- fuzzing ------------------------------------------------------------------------------
@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
@example("KW1.K1.42.7K3M9QX2HD4P.1234.1." + "A" * 103)
@example("KW1.K1.99999999999999999999.ABCD..1." + "A" * 103)
def test_random_text_raises_only_ticket_errors(text):
    with pytest.raises(InvalidTicket):
        verify_ticket(KEYS, text)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_ticket_errors(data):
    with pytest.raises(InvalidTicket):
        verify_ticket(KEYS, data)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(PAYLOAD) - 1))
def test_every_truncation_fails(length):
    with pytest.raises(InvalidTicket):
        verify_ticket(KEYS, PAYLOAD[:length])


@settings(max_examples=1000, deadline=None)
@given(st.integers(0, len(PAYLOAD) - 1), st.integers(0, 255))
def test_one_changed_byte_fails(position, value):
    data = bytearray(PAYLOAD.encode())
    if data[position] == value:
        value = (value + 1) % 256
    data[position] = value
    with pytest.raises(InvalidTicket):
        verify_ticket(KEYS, bytes(data))
    with pytest.raises(InvalidTicket):
        verify_ticket(KEYS, data.decode("latin-1"))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, MAX_ID), st.none() | st.integers(1, MAX_ID), st.integers(0, MAX_GENERATION),
       st.text("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=4, max_size=24))
def test_round_trip_any_claims(event_id, seat_id, generation, serial):
    claims = TicketClaims(ticket_number=f"TKT-{event_id}-{serial}", event_id=event_id,
                          seat_id=seat_id, generation=generation)
    payload = sign_ticket(KEYRING, claims)
    assert len(payload) <= MAX_PAYLOAD and QR_ALPHANUMERIC.fullmatch(payload)
    assert claims_of(verify_ticket(KEYS, payload)) == claims


# --- the keyring ----------------------------------------------------------------------------
def test_keyring_text_round_trip_and_forms():
    one, two = Keyring.generate("A1"), Keyring.generate("b2")
    ring = Keyring.parse(f" {one.to_text()} , {two.to_text()} ")
    assert ring.kids == ("A1", "B2") and ring.current_kid == "A1"
    assert Keyring.parse(ring.to_text()).keys_document() == ring.keys_document()
    # standard base64 with padding is read too
    key = one.to_text().split(":")[1]
    raw = base64.urlsafe_b64decode(key + "=")
    same = Keyring.parse(f"a1:{base64.b64encode(raw).decode()}")
    assert same.public_key_text("A1") == one.public_key_text("A1")


@pytest.mark.parametrize("text", ["K1", "K1:", "K1:abc", ":" + "A" * 43, "TOOLONGID:" + "A" * 43,
                                  "K-1:" + "A" * 43, "K1:" + "A" * 42 + "!",
                                  "K1:" + "A" * 43 + ",k1:" + "B" * 43])
def test_keyring_refuses_malformed_text_without_echoing_it(text):
    with pytest.raises(KeyringError) as caught:
        Keyring.parse(text)
    secretish = text.partition(":")[2]
    assert not secretish or secretish[:20] not in str(caught.value)


def test_keyring_repr_and_empty():
    assert KEYRING.to_text().split(":")[1] not in repr(KEYRING)
    assert repr(KEYRING) == "Keyring(kids=['K1'])"
    empty = Keyring.parse("")
    assert not empty and empty.current_kid is None
    with pytest.raises(NoSigningKey):
        sign_ticket(empty, CLAIMS)


def test_keys_document_has_public_keys_only():
    ring = Keyring.parse(Keyring.generate("K2").to_text() + "," + KEYRING.to_text())
    document = ring.keys_document()
    assert [k["kid"] for k in document["keys"]] == ["K2", "K1"]
    assert [k["current"] for k in document["keys"]] == [True, False]
    for entry in document["keys"]:
        assert entry["alg"] == "Ed25519"
        assert len(base64.b64decode(entry["public_key"])) == 32
    for private in ring.to_text().split(","):
        assert private.split(":")[1] not in str(document)
