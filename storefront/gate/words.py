"""The gate's answers in words, for a person at arm's length (the API keeps its codes)."""

from __future__ import annotations

from datetime import UTC, datetime

RESULT_WORDS = {
    "admitted": "Come in",
    "repeat": "Already scanned here just now: fine, come in",
    "used": "Already used",
    "revoked": "This code was replaced: the ticket was given to someone else",
    "refunded": "Refunded: this ticket is void",
    "cancelled": "Cancelled: this ticket is void",
    "unknown": "Not a ticket of this event",
    "wrong_event": "A ticket for another event",
    "forged": "Not a genuine ticket",
}


def _clock(ms: int | None) -> str:
    if not ms:
        return "earlier"
    return "at " + datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S UTC")


def result_words(result: str, ticket) -> str:
    """One sentence for `result`; `ticket` (a TicketOut or None) adds when and where."""
    words = RESULT_WORDS.get(result, result)
    if result == "used" and ticket is not None:
        return f"{words} {_clock(ticket.checked_in_at)} at gate {ticket.gate or '?'}."
    return words + "."
