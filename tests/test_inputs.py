"""The rules every input obeys (engine/inputs.py), as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated

import msgspec
import pytest

from engine import catalog_types as t
from engine.accounts import Registration
from engine.inputs import (
    CONTROL_PROBLEM,
    ONE_LINE,
    TIME_PROBLEM,
    can_break_rules,
    problems,
)
from storefront.api_holds import Selection

PLUS_14 = timezone(timedelta(hours=14))
MINUS_14 = timezone(timedelta(hours=-14))


@pytest.mark.parametrize("text, bad", [
    ("plain", False), ("tab\tand\nlines\r\n", False), ("", False), ("\u202eok in long text", False),
    ("nul\u0000", True), ("bell\u0007", True), ("esc\u001b", True), ("\u000b", True),
    ("\u000c", True), ("\u001f", True),
])
def test_control_characters(text, bad):
    assert problems(text, "f") == ({"f": CONTROL_PROBLEM} if bad else {})


@pytest.mark.parametrize("value, ok", [
    (datetime(1900, 1, 1, tzinfo=UTC), True),
    (datetime(2999, 12, 31, 23, 59, 59, tzinfo=UTC), True),
    (datetime(1899, 12, 31, 23, 59, 59, tzinfo=UTC), False),
    (datetime(3000, 1, 1, tzinfo=UTC), False),
    (datetime(1, 1, 1, tzinfo=PLUS_14), False),        # year 0 in UTC: cannot even convert
    (datetime(9999, 12, 31, 23, tzinfo=MINUS_14), False),  # year 10000 in UTC
    (datetime(1900, 1, 1, 13, tzinfo=PLUS_14), False),  # 1899-12-31T23:00Z
    (datetime(2027, 1, 1), True),  # naive: read as UTC
])
def test_times(value, ok):
    assert problems(value, "at") == ({} if ok else {"at": TIME_PROBLEM})


def test_problems_are_found_anywhere_and_named_by_path():
    section = t.SectionCreate(name="S", package_id=1, numbering_type="custom", custom_seats=[
        t.CustomSeat(seat_number="1"), t.CustomSeat(seat_number="2", row="B\u0000")],
        row_price_modifiers={"A\u0001": 5})
    assert problems(section) == {"custom_seats[1].row": CONTROL_PROBLEM,
                                 "row_price_modifiers": CONTROL_PROBLEM}
    update = t.PackageUpdate(closes_at=datetime(3001, 1, 1, tzinfo=UTC))
    assert problems(update) == {"closes_at": TIME_PROBLEM}
    assert problems(t.PackageUpdate()) == {}  # unset fields are not looked at


@pytest.mark.parametrize("typ, can", [
    (Selection, False), (t.SeatBlock, False),  # numbers only: a hold is never walked
    (t.EventQuery, True), (t.SectionCreate, True), (Registration, True), (t.Postpone, True),
    (dict[str, int], True), (list[int], False), (tuple[int, str], True),
])
def test_which_types_can_break_the_rules(typ, can):
    assert can_break_rules(typ) is can


OneLine = Annotated[str, msgspec.Meta(pattern=ONE_LINE)]


@pytest.mark.parametrize("text, ok", [
    ("Lake of Stars", True), ("", True), ("Ünïcödé – ok", True), ("line\n", False),
    ("two\nlines", False), ("tab\t", False), ("\u202eevil", False), ("a\u2066b\u2069", False),
    ("nel\u0085", False), ("del\u007f", False),
])
def test_one_line_pattern(text, ok):
    try:
        msgspec.convert(text, OneLine)
    except msgspec.ValidationError:
        assert not ok
    else:
        assert ok
