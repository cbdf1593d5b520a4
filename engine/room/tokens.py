"""The waiting room's signed values, both versioned and bound to one event and one buyer.

Join challenge (purpose "challenge"), format 1:

    c1.<event id>.<buyer>.<nonce: 32 hex>.<expires: unix ms>.<difficulty: bits>.<mac>

The page finds a `solution` (decimal digits) such that SHA-256 of `<challenge>:<solution>` starts
with `difficulty` zero bits. The room accepts each nonce once (room_join.lua remembers it until it
expires), so one solution buys one place, once.

Pass (purpose "pass"), format 1, kept in the `kwika_pass_<event id>` cookie:

    p1.<event id>.<buyer>.<pass number>.<expires: unix ms>.<mac>

The pass number is the room's count of admissions when it was given: the room keeps, per buyer,
the number of their current pass, so an old or borrowed pass is refused even with a good MAC.
Buyer keys (`u:<id>`, `g:<id>`) hold no dots.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass

from engine.signing import sign, unsign

CHALLENGE_VERSION, PASS_VERSION = "c1", "p1"
MAX_DIFFICULTY = 28
MAX_EXTRA_DIFFICULTY = 6
_BUYER = re.compile(r"[ug]:[A-Za-z0-9_-]{1,64}")
_SOLUTION = re.compile(r"[0-9]{1,20}")


@dataclass(frozen=True)
class Challenge:
    event_id: int
    buyer: str
    nonce: str
    expires_ms: int
    difficulty: int


@dataclass(frozen=True)
class Pass:
    event_id: int
    buyer: str
    number: int
    expires_ms: int


def random_score() -> int:
    """A pre-queue place: 52 random bits from the OS (every score below 2^52, see room.lua)."""
    return int.from_bytes(os.urandom(7), "big") >> 4


def effective_difficulty(base: int, joins_per_second: int, spike: int) -> int:
    """The provider's difficulty, raised by one bit for each doubling of joins a second above
    `spike` (at most MAX_EXTRA_DIFFICULTY more, never above MAX_DIFFICULTY)."""
    extra = 0
    if spike > 0 and joins_per_second > spike:
        extra = min(MAX_EXTRA_DIFFICULTY, 1 + int(math.log2(joins_per_second / spike)))
    return min(MAX_DIFFICULTY, base + extra)


def make_challenge(secret: str, event_id: int, buyer: str, difficulty: int, expires_ms: int) -> str:
    value = f"{CHALLENGE_VERSION}.{event_id}.{buyer}.{os.urandom(16).hex()}.{expires_ms}.{difficulty}"
    return sign(secret, "challenge", value)


def read_challenge(secret: str, signed: str) -> Challenge | None:
    """The challenge `signed` carries when it is ours and well-formed (expiry not checked)."""
    value = unsign(secret, "challenge", signed) if len(signed) <= 300 else None
    parts = value.split(".") if value else []
    if len(parts) != 6 or parts[0] != CHALLENGE_VERSION or not _BUYER.fullmatch(parts[2]):
        return None
    try:
        return Challenge(int(parts[1]), parts[2], parts[3], int(parts[4]), int(parts[5]))
    except ValueError:
        return None


def leading_zero_bits(digest: bytes) -> int:
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def solves(challenge: str, solution: str, difficulty: int) -> bool:
    """Whether `solution` answers `challenge` at `difficulty` bits."""
    if not _SOLUTION.fullmatch(solution):
        return False
    digest = hashlib.sha256(f"{challenge}:{solution}".encode()).digest()
    return leading_zero_bits(digest) >= difficulty


def solve(challenge: str, difficulty: int) -> str:
    """A solution, the slow way (the page does this in JavaScript; tests and benchmarks here)."""
    n = 0
    while not solves(challenge, str(n), difficulty):
        n += 1
    return str(n)


def make_pass(secret: str, event_id: int, buyer: str, number: int, expires_ms: int) -> str:
    return sign(secret, "pass", f"{PASS_VERSION}.{event_id}.{buyer}.{number}.{expires_ms}")


def read_pass(secret: str, signed: str) -> Pass | None:
    """The pass `signed` carries when it is ours and well-formed (not yet checked against the
    room: whose it is, whether it is live)."""
    value = unsign(secret, "pass", signed) if len(signed) <= 300 else None
    parts = value.split(".") if value else []
    if len(parts) != 5 or parts[0] != PASS_VERSION or not _BUYER.fullmatch(parts[2]):
        return None
    try:
        return Pass(int(parts[1]), parts[2], int(parts[3]), int(parts[4]))
    except ValueError:
        return None
