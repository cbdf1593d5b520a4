"""Which passwords an account may have.

Length is checked where the input is decoded (`accounts.Password`: 8 to 256 characters). Beyond
that a password is refused when it is one of the most common passwords (the bundled list in
`common_passwords.txt`, compared case-insensitively), when it is the account's own email address,
the part of it before the `@`, or its name (case-insensitively), or when it is only whitespace.
Each refusal is one plain sentence for the person choosing it.
"""

from __future__ import annotations

import functools
from pathlib import Path

COMMON_PASSWORDS = Path(__file__).with_name("common_passwords.txt")


@functools.cache
def common_passwords(path: Path = COMMON_PASSWORDS) -> frozenset[str]:
    """The bundled list, case-folded (read once per process, on first use)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(line.casefold() for line in lines if line and not line.startswith("# "))


def password_problem(password: str, *, email: str, name: str,
                     common: frozenset[str]) -> str | None:
    """Why `password` may not be used by the account (`email`, `name`), or None when it may."""
    if not password.strip():
        return "a password cannot be only spaces"
    folded = password.strip().casefold()
    address = email.strip().casefold()
    if folded in {address, address.partition("@")[0], name.strip().casefold()}:
        return "a password cannot be your email address or your name"
    if password.casefold() in common or folded in common:
        return "this is one of the most common passwords, which are guessed first; choose another"
    return None
