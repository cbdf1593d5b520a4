"""Small domain errors. The storefront maps each to one HTTP status and the error shape once."""

from __future__ import annotations

import math


class DomainError(Exception):
    """Base class: `code` is the machine-readable reason, the message is for people."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.fields = fields or {}


class NotFound(DomainError):
    code = "not_found"


class Forbidden(DomainError):
    code = "forbidden"


class Unauthenticated(DomainError):
    code = "unauthenticated"


class Conflict(DomainError):
    code = "conflict"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class Invalid(DomainError):
    """Well-formed input that breaks a rule (dates out of order, a capacity below what is sold)."""

    code = "invalid"


class TryLater(DomainError):
    """A refusal that lifts by itself: `retry_after` whole seconds (at least 1) until a retry
    may succeed. The storefront sends it as the `Retry-After` header."""

    code = "try_later"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None,
                 fields: dict[str, str] | None = None):
        super().__init__(message, code=code, fields=fields)
        self.retry_after = max(1, math.ceil(retry_after))


class RateLimited(TryLater):
    """Too many attempts from this caller (429)."""

    code = "rate_limited"


class Busy(TryLater):
    """The server is at capacity for this kind of work (503)."""

    code = "busy"
