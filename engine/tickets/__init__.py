"""Tickets: the signed QR payload (`payload`, format KW1), the signing keys (`keyring`), and the
PDF tickets (`docs`, `pdf`, `store`).

The payload and the keys are pure and cheap; import them from here. The PDF side is imported
from its own modules, so a scan path never loads fpdf2.
"""

from engine.tickets.keyring import Keyring, KeyringError, NoSigningKey
from engine.tickets.payload import (
    ForgedTicket,
    InvalidTicket,
    MalformedTicket,
    TicketClaims,
    UnknownKey,
    VerifiedTicket,
    new_ticket_number,
    sign_ticket,
    verify_ticket,
)

__all__ = [
    "ForgedTicket", "InvalidTicket", "Keyring", "KeyringError", "MalformedTicket", "NoSigningKey",
    "TicketClaims", "UnknownKey", "VerifiedTicket", "new_ticket_number", "sign_ticket",
    "verify_ticket",
]
