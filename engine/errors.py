"""Small domain errors. The storefront maps each to one HTTP status and the error shape once."""

from __future__ import annotations


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
