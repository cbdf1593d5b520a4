"""Who is on the other end of a request: the client's address, and the bucket per-address limits
count it in.

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


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address, with IPv4 seen through an IPv6 socket (`::ffff:10.0.0.5`) as plain IPv4."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _trusted(address: str, networks) -> bool:
    ip = _address(address)
    return ip is not None and any(ip in network for network in networks)


def client_ip(request: web.Request) -> str:
    """The client's address (see the module docstring); "unknown" when there is none."""
    found = _address(request.remote or "")
    peer = str(found) if found is not None else "unknown"
    networks = _networks(request.app[SETTINGS].trusted_proxies)
    if not networks or not _trusted(peer, networks):
        return peer
    hops = [hop.strip() for line in request.headers.getall("X-Forwarded-For", [])
            for hop in line.split(",") if hop.strip()]
    client = peer
    for hop in reversed(hops):
        found = _address(hop)
        if found is None:
            break  # a malformed hop: believe nothing further left of it
        client = str(found)
        if not _trusted(client, networks):
            return client
    return client


def client_bucket(request: web.Request) -> str:
    """Who the per-address limits count: the client's IPv4 address, or its IPv6 network (a /64
    by default, KWIKA_IPV6_PREFIX): one home or phone gets a whole /64, so counting single IPv6
    addresses would give it millions of fresh addresses."""
    address = client_ip(request)
    ip = _address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        prefix = request.app[SETTINGS].ipv6_prefix
        return str(ipaddress.IPv6Network((ip, prefix), strict=False))
    return address
