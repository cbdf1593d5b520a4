"""Ticket signing keys: Ed25519 private keys by key id, the first one current.

`KWIKA_TICKET_SIGNING_KEYS` holds them as `KID:KEY[,KID:KEY...]`: a key id of 1-8 letters and
digits (read case-insensitively, kept uppercase, since it travels in the QR payload) and the
32-byte raw private key in base64 (url-safe or standard, padding optional; `kwika keys` writes
url-safe without padding). The first key signs new tickets; every listed key verifies. To rotate,
put a new key first and keep the old ones after it until the tickets they signed are past.

Private keys never leave this object in text except through `to_text()`, which `kwika keys` and
`kwika up` use to write them; the repr shows key ids only.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

KID = r"[A-Z0-9]{1,8}"
_KID = re.compile(KID)
ALGORITHM = "Ed25519"
KEYS_DOCUMENT_VERSION = 1
_KID_CHARS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class KeyringError(ValueError):
    """Malformed signing keys; the message names the entry, never its key material."""


class NoSigningKey(RuntimeError):
    """Signing was asked of a keyring that holds no key (KWIKA_TICKET_SIGNING_KEYS unset)."""


class Keyring:
    """Ed25519 ticket signing keys by key id; the first given is the current one."""

    def __init__(self, keys: Iterable[tuple[str, Ed25519PrivateKey]] = ()):
        self._private: dict[str, Ed25519PrivateKey] = {}
        for kid, key in keys:
            if not _KID.fullmatch(kid):
                raise KeyringError(f"key id {kid[:16]!r} must be 1-8 of A-Z and 0-9")
            if kid in self._private:
                raise KeyringError(f"key id {kid!r} is listed twice")
            self._private[kid] = key
        self._public = MappingProxyType({kid: key.public_key()
                                         for kid, key in self._private.items()})

    @classmethod
    def parse(cls, text: str) -> Keyring:
        """Keys from `KID:KEY,KID:KEY` (the environment variable's form); empty text, none."""
        keys = []
        for n, entry in enumerate((e.strip() for e in text.split(",") if e.strip()), 1):
            kid, sep, encoded = entry.partition(":")
            if not sep:
                raise KeyringError(f"entry {n} is not KID:BASE64_PRIVATE_KEY")
            kid = kid.strip().upper()
            if not _KID.fullmatch(kid):
                raise KeyringError(f"entry {n}: the key id must be 1-8 of A-Z and 0-9")
            raw = _b64decode(encoded.strip())
            if raw is None or len(raw) != 32:
                raise KeyringError(f"entry {n} ({kid}): the key must be 32 bytes in base64")
            keys.append((kid, Ed25519PrivateKey.from_private_bytes(raw)))
        return cls(keys)

    @classmethod
    def generate(cls, kid: str | None = None) -> Keyring:
        """A keyring of one fresh key (with a random 4-character key id unless given)."""
        kid = kid.upper() if kid else "".join(secrets.choice(_KID_CHARS) for _ in range(4))
        return cls([(kid, Ed25519PrivateKey.generate())])

    @property
    def current_kid(self) -> str | None:
        return next(iter(self._private), None)

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(self._private)

    @property
    def public_keys(self) -> Mapping[str, Ed25519PublicKey]:
        """Key id -> public key, for `verify_ticket`."""
        return self._public

    def current(self) -> tuple[str, Ed25519PrivateKey]:
        """The key id and private key that sign new tickets."""
        kid = self.current_kid
        if kid is None:
            raise NoSigningKey("no ticket signing key: set KWIKA_TICKET_SIGNING_KEYS "
                               "(`kwika keys` makes one)")
        return kid, self._private[kid]

    def public_key_text(self, kid: str) -> str:
        """The raw 32-byte public key of `kid` in standard base64."""
        raw = self._public[kid].public_bytes(Encoding.Raw, PublicFormat.Raw)
        return base64.b64encode(raw).decode("ascii")

    def keys_document(self) -> dict:
        """What `/.well-known/kwika-ticket-keys.json` serves: public keys only, current first."""
        return {"version": KEYS_DOCUMENT_VERSION, "payload_format": "KW1",
                "keys": [{"kid": kid, "alg": ALGORITHM, "public_key": self.public_key_text(kid),
                          "current": kid == self.current_kid} for kid in self._private]}

    def to_text(self) -> str:
        """The keys as KWIKA_TICKET_SIGNING_KEYS takes them. Secret: write it, never log it."""
        return ",".join(
            f"{kid}:" + base64.urlsafe_b64encode(key.private_bytes(
                Encoding.Raw, PrivateFormat.Raw, NoEncryption())).decode("ascii").rstrip("=")
            for kid, key in self._private.items())

    def __bool__(self) -> bool:
        return bool(self._private)

    def __repr__(self) -> str:
        return f"Keyring(kids={list(self._private)!r})"


def _b64decode(text: str) -> bytes | None:
    text = text.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
