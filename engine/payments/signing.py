"""Timestamped webhook signatures (the scheme Stripe uses), for the sandbox and its adapter.

The sender signs each delivery with the time it sends it:

    Kwika-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

During a secret rotation it signs with every active secret, one `v1=` each; the receiver accepts
the delivery when any `v1=` matches any of its secrets. Other schemes (`v0=`, ...) are ignored.
The receiver refuses a timestamp further than `tolerance` seconds from its own clock, in either
direction, so a captured delivery cannot be replayed later. Comparison is constant-time.
Pure functions: no I/O, the time is an argument.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from engine.payments.base import BadSignature

HEADER = "Kwika-Signature"
TOLERANCE_SECONDS = 300
_MAX_HEADER = 4096  # a real header is ~80 characters per secret
_MAX_SIGNATURES = 8


def _hmac(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secrets: Sequence[str], body: bytes, timestamp: int) -> str:
    """The `Kwika-Signature` value for `body` sent at `timestamp`, one `v1=` per secret."""
    if not secrets:
        raise ValueError("signing needs at least one secret")
    return ",".join([f"t={timestamp}"] + [f"v1={_hmac(s, timestamp, body)}" for s in secrets])


def parse(header: str) -> tuple[int, list[str]]:
    """`t=...,v1=...` as (timestamp, v1 signatures); BadSignature when it cannot be read."""
    if not header or len(header) > _MAX_HEADER or not header.isascii():
        raise BadSignature("the signature header is missing or unreadable")
    timestamps: list[str] = []
    signatures: list[str] = []
    for part in header.split(","):
        key, eq, value = part.strip().partition("=")
        if not eq:
            raise BadSignature("the signature header is unreadable")
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            signatures.append(value)
    if len(timestamps) != 1 or not timestamps[0].isdigit() or len(timestamps[0]) > 12:
        raise BadSignature("the signature header needs exactly one timestamp t=<unix seconds>")
    if not signatures or len(signatures) > _MAX_SIGNATURES:
        raise BadSignature("the signature header carries no v1 signature (or too many)")
    return int(timestamps[0]), signatures


def verify(header: str | None, body: bytes, secrets: Sequence[str], now: float,
           tolerance: float = TOLERANCE_SECONDS) -> int:
    """Check a `Kwika-Signature` header over `body`; return its timestamp.

    Raises BadSignature when the header is missing or unreadable, its timestamp is more than
    `tolerance` seconds from `now` (either way), or no `v1=` matches any of `secrets`."""
    if header is None:
        raise BadSignature(f"the {HEADER} header is missing")
    timestamp, signatures = parse(header)
    if abs(now - timestamp) > tolerance:
        raise BadSignature("the signature's timestamp is outside the tolerance window")
    expected = [_hmac(secret, timestamp, body).encode() for secret in secrets if secret]
    # every pair is compared, so the time taken says nothing about which one (if any) matched
    matched = False
    for sent in signatures:
        for good in expected:
            matched |= hmac.compare_digest(sent.encode(), good)
    if not matched:
        raise BadSignature("no signature matches")
    return timestamp
