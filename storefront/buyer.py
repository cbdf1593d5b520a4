"""Who a buyer is: a signed-in account (`u:<user id>`) or a guest identity (`g:<id>`).

A guest identity lives in the `kwika_guest` cookie, signed for the purpose "guest" (no other
signed value passes for it). It is minted only when a guest makes a hold in an event that allows
guests, and a guest costs where it is spent: a guest's first hold in an event counts against
KWIKA_GUESTS_PER_IP_PER_MINUTE for its client address (IPv6: per /64) in that event, inside the
hold script's one call (`HoldLimits.new_guest`). So a script cannot bring fresh identities into
an event faster than that to dodge per-buyer limits, wherever it minted them. Per-buyer limits
(per package, per event, one basket) hold per identity; holds are also rate-limited per identity
and per client address.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from aiohttp import web

from engine.accounts import User
from engine.errors import Unauthenticated
from engine.inventory import HoldLimits
from engine.signing import sign, unsign
from storefront.appkeys import SETTINGS, USER
from storefront.auth import GUEST_COOKIE
from storefront.client import client_bucket

GUEST_COOKIE_DAYS = 30


@dataclass(frozen=True)
class Buyer:
    key: str
    new_guest_cookie: str | None = None  # set this cookie on the response when present

    @property
    def is_guest(self) -> bool:
        return self.key.startswith("g:")


def current_buyer(request: web.Request) -> str | None:
    """The caller's buyer key, or None for a visitor with no account and no guest identity."""
    user: User | None = request.get(USER)
    if user is not None:
        return f"u:{user.id}"
    cookie = request.cookies.get(GUEST_COOKIE)
    guest = unsign(request.app[SETTINGS].secret_key, "guest", cookie) if cookie else None
    return f"g:{guest}" if guest else None


def buyer_for_hold(request: web.Request, allow_guest: bool) -> Buyer:
    """The buyer a new hold belongs to; mints a guest identity where guests may buy (what it
    costs is counted by the hold itself: `hold_limits`).

    Raises Unauthenticated (`login_required`) when the event takes no guests, whatever guest
    cookie the caller has."""
    user: User | None = request.get(USER)
    if user is not None:
        return Buyer(f"u:{user.id}")
    if not allow_guest:
        raise Unauthenticated("log in to buy tickets for this event", code="login_required")
    existing = current_buyer(request)
    if existing is not None:
        return Buyer(existing)
    guest = secrets.token_urlsafe(16)
    return Buyer(f"g:{guest}", sign(request.app[SETTINGS].secret_key, "guest", guest))


def hold_limits(request: web.Request, buyer: Buyer) -> HoldLimits:
    """The rate limits of a hold request by `buyer` from this client (per minute, as settings);
    a guest new to the event also spends one of the address's new guests."""
    settings = request.app[SETTINGS]

    def per_minute(n: int) -> tuple[int, int]:
        return (n, max(n, 1))  # a burst of one minute's worth, refilled evenly over the minute

    return HoldLimits(client=client_bucket(request),
                      buyer=per_minute(settings.holds_per_buyer_per_minute),
                      ip=per_minute(settings.holds_per_ip_per_minute),
                      new_guest=per_minute(settings.guests_per_ip_per_minute))


def set_guest_cookie(request: web.Request, response: web.StreamResponse, value: str) -> None:
    settings = request.app[SETTINGS]
    response.set_cookie(GUEST_COOKIE, value, httponly=True, samesite="Lax",
                        secure=settings.cookie_secure, path="/",
                        max_age=GUEST_COOKIE_DAYS * 24 * 3600)
