"""Who is on the other end of a request: the client's address.

The address is the TCP peer's, unless that peer is one of `KWIKA_TRUSTED_PROXIES`: then the
X-Forwarded-For chain is read from the right, skipping trusted proxies, and the first address
that is not one is the client. Nothing a client sends is believed otherwise, so a forged header
cannot buy a fresh address for the per-address limits.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from aiohttp import web

from engine.settings import proxy_networks
from storefront.appkeys import SETTINGS

_networks = lru_cache(maxsize=8)(proxy_networks)


def _trusted(address: str, networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_ip(request: web.Request) -> str:
    """The client's address (see the module docstring); "unknown" when there is none."""
    peer = request.remote or "unknown"
    networks = _networks(request.app[SETTINGS].trusted_proxies)
    if not networks or not _trusted(peer, networks):
        return peer
    hops = [hop.strip() for line in request.headers.getall("X-Forwarded-For", [])
            for hop in line.split(",") if hop.strip()]
    client = peer
    for hop in reversed(hops):
        try:
            client = str(ipaddress.ip_address(hop))
        except ValueError:
            break  # a malformed hop: believe nothing further left of it
        if not _trusted(client, networks):
            return client
    return client
