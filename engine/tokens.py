"""API tokens' scope and lifetime: the types and rules, without I/O.

A token has a scope: `write` (everything its user's role allows), `read` (reading only) or
`scan` (only the gate's scan routes, and who-am-I). The storefront's authorization layer decides
which requests each scope allows (`storefront.auth.token_allows`). A token may expire: at a given
moment (`expires_at`) or some days after it is made (`expires_in_days`); an expired token is
refused like an unknown one. Tokens are made only from a logged-in session, never with another
token, so a leaked token can neither widen its scope nor outlive its own revocation or expiry.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from msgspec import Meta, Struct

from engine.errors import Invalid

Scope = Literal["read", "write", "scan"]
MAX_TOKEN_DAYS = 3650  # an expiry is at most about ten years ahead (or there is none)


class TokenRequest(Struct, forbid_unknown_fields=True, kw_only=True):
    """A new token: `read` unless asked for more; no expiry unless given one."""

    name: Annotated[str, Meta(min_length=1, max_length=100)]
    scope: Scope = "read"
    expires_at: datetime | None = None
    expires_in_days: Annotated[int, Meta(ge=1, le=MAX_TOKEN_DAYS)] | None = None


class TokenInfo(Struct, kw_only=True):
    id: int
    name: str
    prefix: str
    scope: Scope
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


class NewToken(TokenInfo, kw_only=True):
    token: str  # shown once


class TokenGrant(Struct, frozen=True, kw_only=True):
    """What a token grants, as the identity cache keeps it: whose it is, its scope, and when it
    expires (Unix seconds), so expiry is honoured from the cache too."""

    user_id: int
    scope: Scope
    expires: float | None = None

    def expired(self, now: float) -> bool:
        return self.expires is not None and self.expires <= now


def token_expiry(request: TokenRequest, now: datetime) -> datetime | None:
    """When a token asked for by `request` at `now` expires (None: never); Invalid naming the
    field when the request's expiry is not a moment in the next `MAX_TOKEN_DAYS` days."""
    if request.expires_at is not None and request.expires_in_days is not None:
        raise Invalid("give expires_at or expires_in_days, not both",
                      fields={"expires_in_days": "not together with expires_at"})
    if request.expires_in_days is not None:
        return now + timedelta(days=request.expires_in_days)
    at = request.expires_at
    if at is None:
        return None
    if at.tzinfo is None:
        raise Invalid("expires_at needs a time zone offset", fields={"expires_at": "time zone missing"})
    if at <= now:
        raise Invalid("expires_at is in the past", fields={"expires_at": "in the past"})
    if at > now + timedelta(days=MAX_TOKEN_DAYS):
        raise Invalid(f"expires_at is more than {MAX_TOKEN_DAYS} days ahead",
                      fields={"expires_at": "too far ahead"})
    return at
