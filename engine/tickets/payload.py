"""The signed ticket payload: the text in a ticket's QR code. Format `KW1`, defined here.

A payload is one line of uppercase ASCII, seven fields joined by `.`::

    KW1.K7QX.42.7K3M9QX2HD4P.1234.1.<signature>
    |   |    |  |            |    | `- 103 chars: RFC 4648 base32, no padding, of the 64-byte
    |   |    |  |            |    |    Ed25519 signature over the ASCII bytes of everything
    |   |    |  |            |    |    before the last "." (here "KW1.K7QX.42.7K3M9QX2HD4P.1234.1")
    |   |    |  |            |    `--- generation: 0 .. 2**31-1, decimal; a new payload for the
    |   |    |  |            |         same ticket (after a transfer) has a higher one, so a
    |   |    |  |            |         revoked payload is told from its replacement
    |   |    |  |            `-------- seat id, decimal; empty for general admission ("..")
    |   |    |  `--------------------- serial: the {random} of the ticket number, 4-24 of
    |   |    |                         0-9 A-Z (`new_ticket_number` uses Crockford's base32)
    |   |    `------------------------ event id, decimal: the ticket number is
    |   |                              TKT-{event id}-{serial}
    |   `----------------------------- key id: 1-8 of A-Z 0-9, which public key verifies it
    `--------------------------------- format tag "KW" and version 1

Numbers are written without leading zeros (ids 1 .. 2**62), so each ticket has exactly one
encoding and no character of a valid payload can change without failing verification. The
package, attendee and the ticket's state are not in the payload: the scan side looks them up
(or reads them from the gate's offline list) by ticket number.

Why this text and not JSON or CBOR: every character is in the QR alphanumeric set (0-9 A-Z and
`.`), which a QR code stores in 5.5 bits instead of the 8 of byte mode, so the whole payload
(typically ~135 characters) fits a version 8 code at error correction level Q (49 x 49 modules),
large enough to read from a crumpled printout. The signature is base32 rather than base45: base45
is ~7 characters shorter here (the same QR version), but its alphabet holds the space and
`$%*+-./:`, which keyboard-wedge scanners type differently on non-US layouts, which trimming
input strips, and which would clash with the field separator. A gate or a browser parses it with
one split and one base32 decode; `KW2` would be a new version beside this one.

`verify_ticket` never raises anything but `InvalidTicket` (`MalformedTicket`, `UnknownKey`,
`ForgedTicket`) whatever it is given. Nothing secret is compared: the signature check is
OpenSSL's Ed25519 verification (only public data are involved), so there is no timing channel to
close; parsing is bounded by `MAX_PAYLOAD` and strict (no whitespace, no lowercase: callers strip
a scanner's line ending).
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Mapping

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from engine.tickets.keyring import KID, Keyring

VERSION = 1
TAG = "KW"
SIGNATURE_CHARS = 103  # 64 bytes in base32 without its one "=" of padding
MAX_ID = 2**62
MAX_GENERATION = 2**31 - 1
MAX_PAYLOAD = 200  # the longest valid payload is 192 characters
_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # RFC 4648
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # no I, L, O, U: easy to type at a gate
SERIAL_CHARS = 12  # 60 random bits

_ID = r"[1-9][0-9]{0,18}"
_SERIAL = r"[0-9A-Z]{4,24}"
_FIELDS = re.compile(
    rf"(?P<kid>{KID})\.(?P<event>{_ID})\.(?P<serial>{_SERIAL})\.(?P<seat>{_ID}|)"
    r"\.(?P<gen>0|[1-9][0-9]{0,9})")
_TICKET_NUMBER = re.compile(rf"TKT-({_ID})-({_SERIAL})")
_SIGNATURE = re.compile(rf"[A-Z2-7]{{{SIGNATURE_CHARS}}}")


class InvalidTicket(Exception):
    """A payload that is not a valid ticket; `code` says why, for the scan answer."""

    code = "invalid"


class MalformedTicket(InvalidTicket):
    """Not a payload of a version this code reads (garbage, truncated, altered layout)."""

    code = "malformed"


class UnknownKey(InvalidTicket):
    """Well formed, but signed by a key id that is not among the public keys given."""

    code = "unknown_key"


class ForgedTicket(InvalidTicket):
    """Well formed, with a known key id, but the signature does not match."""

    code = "forged"


class TicketClaims(msgspec.Struct, frozen=True, kw_only=True):
    """What a payload asserts: this ticket, of this event (and seat), at this generation."""

    ticket_number: str  # TKT-{event_id}-{serial}
    event_id: int
    seat_id: int | None = None
    generation: int = 1


class VerifiedTicket(TicketClaims, frozen=True, kw_only=True):
    """Claims read from a payload whose signature verified, and the key and version it used."""

    key_id: str
    version: int = VERSION


def new_ticket_number(event_id: int) -> str:
    """`TKT-{event_id}-{12 random Crockford base32 characters}` (60 random bits: unguessable, and
    a collision in an event of a million tickets has odds below one in a million; the tickets
    table's UNIQUE constraint is the guard all the same)."""
    _check_id(event_id, "event_id")
    value = secrets.randbits(5 * SERIAL_CHARS)
    serial = "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in range(SERIAL_CHARS))
    return f"TKT-{event_id}-{serial}"


def sign_ticket(keyring: Keyring, claims: TicketClaims) -> str:
    """The QR text for `claims`, signed with the keyring's current key.

    Deterministic (Ed25519 is): the same claims and key give the same payload, so a PDF rendered
    again shows the same code. Raises ValueError for claims outside the format (a caller's bug)
    and `NoSigningKey` when the keyring has no key.
    """
    kid, private_key = keyring.current()
    serial = _serial_of(claims)
    if claims.seat_id is not None:
        _check_id(claims.seat_id, "seat_id")
    generation = claims.generation
    if isinstance(generation, bool) or not (isinstance(generation, int)
                                            and 0 <= generation <= MAX_GENERATION):
        raise ValueError(f"generation must be 0 .. {MAX_GENERATION}")
    seat = "" if claims.seat_id is None else str(claims.seat_id)
    body = f"{TAG}{VERSION}.{kid}.{claims.event_id}.{serial}.{seat}.{claims.generation}"
    signature = private_key.sign(body.encode("ascii"))
    return f"{body}.{base64.b32encode(signature).decode('ascii').rstrip('=')}"


def verify_ticket(public_keys: Mapping[str, Ed25519PublicKey], payload: object) -> VerifiedTicket:
    """The claims of `payload` (str, or bytes as read from a scanner) if it is a ticket signed by
    one of `public_keys` (key id -> key, e.g. `Keyring.public_keys`).

    Raises `MalformedTicket`, `UnknownKey` or `ForgedTicket`, and nothing else, for any input.
    """
    text = _as_text(payload)
    head, _, signature_text = text.rpartition(".")
    version, _, fields = head.partition(".")
    if not version.startswith(TAG):
        raise MalformedTicket("not a Kwika ticket")
    if version != f"{TAG}{VERSION}":
        raise MalformedTicket(f"unsupported ticket format {version[:8]!r}")
    match = _FIELDS.fullmatch(fields)
    if match is None or not _SIGNATURE.fullmatch(signature_text):
        raise MalformedTicket("malformed ticket")
    event_id, generation = int(match["event"]), int(match["gen"])
    seat_id = int(match["seat"]) if match["seat"] else None
    if event_id > MAX_ID or (seat_id or 0) > MAX_ID or generation > MAX_GENERATION:
        raise MalformedTicket("malformed ticket")
    # 103 characters carry 515 bits: the last one's 3 unused bits must be zero, so no two texts
    # carry one signature
    if _BASE32.index(signature_text[-1]) & 0b111:
        raise MalformedTicket("malformed ticket signature")
    signature = base64.b32decode(signature_text + "=")
    kid = match["kid"]
    public_key = public_keys.get(kid)
    if public_key is None:
        raise UnknownKey(f"unknown key id {kid!r}")
    try:
        public_key.verify(signature, head.encode("ascii"))
    except InvalidSignature:
        raise ForgedTicket("the ticket's signature does not match") from None
    return VerifiedTicket(ticket_number=f"TKT-{event_id}-{match['serial']}", event_id=event_id,
                          seat_id=seat_id, generation=generation, key_id=kid)


def _as_text(payload: object) -> str:
    if isinstance(payload, (bytes, bytearray, memoryview)):
        raw = bytes(payload)
        if len(raw) > MAX_PAYLOAD or not raw.isascii():
            raise MalformedTicket("not a Kwika ticket")
        return raw.decode("ascii")
    if not isinstance(payload, str) or len(payload) > MAX_PAYLOAD or not payload.isascii():
        raise MalformedTicket("not a Kwika ticket")
    return payload


def _check_id(value: object, name: str) -> None:
    if not (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID):
        raise ValueError(f"{name} must be a whole number 1 .. 2**62")


def _serial_of(claims: TicketClaims) -> str:
    _check_id(claims.event_id, "event_id")
    match = _TICKET_NUMBER.fullmatch(claims.ticket_number)
    if match is None or int(match[1]) != claims.event_id:
        raise ValueError(f"ticket number {claims.ticket_number!r} is not TKT-{claims.event_id}-"
                         "<4-24 of 0-9 A-Z>")
    return match[2]
