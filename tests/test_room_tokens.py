"""The waiting room's signed values and proof of work, as plain functions (engine/room/tokens.py)."""

from __future__ import annotations

import pytest

from engine.room.tokens import (
    effective_difficulty,
    leading_zero_bits,
    make_challenge,
    make_pass,
    random_score,
    read_challenge,
    read_pass,
    solve,
    solves,
)
from engine.signing import sign

SECRET = "test-secret-key-0123456789"


def test_a_challenge_reads_back_and_its_solution_is_checked():
    signed = make_challenge(SECRET, 7, "g:abc", 10, 123_456)
    found = read_challenge(SECRET, signed)
    assert (found.event_id, found.buyer, found.expires_ms, found.difficulty) == (7, "g:abc", 123_456, 10)
    assert len(found.nonce) == 32 and found.nonce != read_challenge(
        SECRET, make_challenge(SECRET, 7, "g:abc", 10, 123_456)).nonce
    answer = solve(signed, 10)
    assert solves(signed, answer, 10)
    assert not solves(signed, answer, 30)  # (a chance of one in a million that it does)
    for bad in ("", "-1", "1.0", " 1", "1" * 21, "١"):
        assert not solves(signed, bad, 0)


@pytest.mark.parametrize("tamper", [
    lambda s: s[:-1] + ("0" if s[-1] != "0" else "1"),  # the MAC
    lambda s: s.replace(".g:abc.", ".g:abd.", 1),  # the identity
    lambda s: s.replace("c1.7.", "c1.8.", 1),  # the event
    lambda s: s + ".x", lambda s: "", lambda s: "é" * 20, lambda s: "x" * 400,
])
def test_a_tampered_challenge_reads_as_nothing(tamper):
    assert read_challenge(SECRET, tamper(make_challenge(SECRET, 7, "g:abc", 10, 1))) is None


def test_purposes_do_not_mix():
    value = "p1.7.g:abc.3.999"
    assert read_pass(SECRET, sign(SECRET, "pass", value)).number == 3
    assert read_pass(SECRET, sign(SECRET, "challenge", value)) is None
    assert read_pass(SECRET, sign(SECRET, "guest", value)) is None
    assert read_pass("another-secret-0123456789", make_pass(SECRET, 7, "g:abc", 3, 999)) is None
    assert read_challenge(SECRET, make_pass(SECRET, 7, "g:abc", 3, 999)) is None


def test_passes_refuse_malformed_values():
    for value in ("p2.7.g:abc.3.999", "p1.x.g:abc.3.999", "p1.7.x:abc.3.999", "p1.7.g:abc.3",
                  "p1.7.g:a.b.3.999"):
        assert read_pass(SECRET, sign(SECRET, "pass", value)) is None


def test_difficulty_rises_with_a_spike_of_joins():
    assert effective_difficulty(14, 100, 200) == 14
    assert effective_difficulty(14, 201, 200) == 15
    assert effective_difficulty(14, 800, 200) == 17
    assert effective_difficulty(14, 10**9, 200) == 20  # at most six bits more
    assert effective_difficulty(26, 10**9, 200) == 28
    assert effective_difficulty(14, 10**9, 0) == 14  # 0: never raised


def test_pre_queue_scores_stay_below_the_release_band():
    scores = [random_score() for _ in range(2000)]
    assert all(0 <= s < 2**52 for s in scores) and len(set(scores)) == 2000
    assert max(scores) > 2**51  # they use the whole band
    assert leading_zero_bits(b"\x00\x0f" + b"\xff" * 30) == 12
