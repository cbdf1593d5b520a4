"""What every input must be, whatever its field. The storefront checks it once, where it decodes
JSON bodies, query strings, forms and path segments (`storefront/api.py`), so no handler and no
store ever sees anything else:

- Text holds no C0 control character other than tab, line feed and carriage return. Postgres
  cannot store NUL at all, and the others are invisible and mean nothing in a ticket shop.
- Times lie between `EARLIEST` and `LATEST` (UTC). Far outside them a time cannot even be
  converted to UTC or shown in a time zone (`0001-01-01T00:00:00+14:00` is in year 0), and no
  event or sale window of a ticket shop lies there.

One-line text (titles, names, places) is stricter, and its types say so with `ONE_LINE`: no
control characters at all (no tabs or line breaks either) and none of the bidirectional
embedding, override and isolate characters (U+202A..U+202E, U+2066..U+2069), which make a name
display as something other than what it is (U+202E followed by "kcilc" shows as "click").
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from typing import Any

import msgspec
import msgspec.inspect as mi

CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# for msgspec's `Meta(pattern=...)`: JSON Schema (ECMA-262) and Python read it alike; `$(?!\n)`
# because Python's `$` also matches before a final line feed
ONE_LINE = r"^[^\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]*$(?!\n)"

EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2999, 12, 31, 23, 59, 59, tzinfo=UTC)

CONTROL_PROBLEM = "contains a control character (only tabs and line breaks are allowed)"
ONE_LINE_PROBLEM = ("must be one line of text, without control characters or characters that "
                    "reverse the direction of text")
TIME_PROBLEM = (f"must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} (UTC)")


def problems(value: Any, path: str = "") -> dict[str, str]:
    """Each field of `value` (a decoded Struct, list, dict, text or time) that breaks the rules
    above, by its path (`custom_seats[0].seat_number`), with the problem in words."""
    found: dict[str, str] = {}
    _walk(value, path, found)
    return found


@functools.cache
def can_break_rules(typ: Any) -> bool:
    """Whether a value of `typ` can hold text or times at all. One of numbers only (a hold's
    selection) cannot, so it need not be walked: the hold path pays nothing for these rules."""
    return _can_break(mi.type_info(typ), set())


def _can_break(info: mi.Type, seen: set[type]) -> bool:
    if isinstance(info, mi.IntType | mi.FloatType | mi.BoolType | mi.NoneType | mi.LiteralType):
        return False  # a literal's few strings are the type's own
    if isinstance(info, mi.StructType):
        if info.cls in seen:
            return False
        seen.add(info.cls)
        return any(_can_break(f.type, seen) for f in info.fields)
    if isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        return _can_break(info.item_type, seen)
    if isinstance(info, mi.TupleType):
        return any(_can_break(t, seen) for t in info.item_types)
    if isinstance(info, mi.DictType):
        return _can_break(info.key_type, seen) or _can_break(info.value_type, seen)
    if isinstance(info, mi.UnionType):
        return any(_can_break(t, seen) for t in info.types)
    return True  # text, times, anything else: walk it


def _walk(value: Any, path: str, found: dict[str, str]) -> None:
    if isinstance(value, str):
        if CONTROL.search(value):
            found[path] = CONTROL_PROBLEM
    elif isinstance(value, datetime):
        if not _in_range(value):
            found[path] = TIME_PROBLEM
    elif isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            _walk(getattr(value, name), f"{path}.{name}" if path else name, found)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _walk(item, f"{path}[{i}]", found)
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk(key, path, found)
            _walk(item, f"{path}.{key}" if path else str(key), found)


def _in_range(value: datetime) -> bool:
    try:
        utc = value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    except OverflowError:  # the offset pushes it past year 1 or 9999
        return False
    return EARLIEST <= utc <= LATEST
