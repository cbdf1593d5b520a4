"""Signed values: cookies and links that must not be forged or swapped for one another.

Every signed value carries its purpose inside the MAC (`session`, `guest`, `csrf`, `pass`,
`challenge`, `order`, ...), so a value signed for one purpose never verifies for another: a CSRF
cookie cannot stand in for a guest identity, nor a guest cookie for a session, nor a waiting-room
join challenge for its pass. Verification is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

Purpose = Literal["session", "guest", "csrf", "pass", "challenge", "order"]


def _mac(secret: str, purpose: str, value: str) -> str:
    message = f"{purpose}\x00{value}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]


def sign(secret: str, purpose: Purpose, value: str) -> str:
    """`value.mac`, where the MAC covers the purpose and the value."""
    return f"{value}.{_mac(secret, purpose, value)}"


def unsign(secret: str, purpose: Purpose, signed: str) -> str | None:
    """The value of `sign(secret, purpose, value)` output when its MAC is right, else None."""
    if not signed.isascii():  # ours always are; compare_digest refuses non-ASCII str
        return None
    value, _, mac = signed.rpartition(".")
    if not value:
        return None
    return value if hmac.compare_digest(mac.encode(), _mac(secret, purpose, value).encode()) else None


def order_token(secret: str, order_number: str) -> str:
    """The `t` of an order's signed link, `/orders/{order_number}?t=...` (purpose "order"): the
    guest's way back to an order from another device or from the tickets email."""
    return sign(secret, "order", order_number).rpartition(".")[2]


def order_path(secret: str, order_number: str) -> str:
    """The path of an order's signed link (prefix it with the site's address)."""
    return f"/orders/{order_number}?t={order_token(secret, order_number)}"
