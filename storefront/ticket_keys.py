"""`GET /.well-known/kwika-ticket-keys.json`: the public keys that verify ticket payloads, so
anyone (a gate device, a partner's scanner) can check a ticket offline.

    {"version": 1, "payload_format": "KW1",
     "keys": [{"kid": "K7QX", "alg": "Ed25519", "public_key": "<32 raw bytes, base64>",
               "current": true}, ...]}

Keys are listed current first; the document is built once at start-up from
KWIKA_TICKET_SIGNING_KEYS and holds no private key.
"""

from __future__ import annotations

from aiohttp import web

from engine.tickets.keyring import Keyring
from storefront.api import json_response
from storefront.appkeys import SETTINGS

PATH = "/.well-known/kwika-ticket-keys.json"
KEYRING = web.AppKey("ticket_keyring", Keyring)
HEADERS = {"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"}


def install(app: web.Application) -> None:
    """Read the signing keys into `app[KEYRING]` and serve their public half at PATH."""
    app[KEYRING] = keyring = Keyring.parse(app[SETTINGS].ticket_signing_keys)
    document = keyring.keys_document()

    async def ticket_keys(request: web.Request) -> web.Response:
        return json_response(document, headers=HEADERS)

    ticket_keys.kwika_own_auth = True  # public: no session or token lookup, no Redis needed
    app.router.add_get(PATH, ticket_keys)
