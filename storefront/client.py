"""Who is on the other end of a request.

A placeholder until trusted proxies are configurable: the peer address of the socket, never a
header a client could forge.
"""

from __future__ import annotations

from aiohttp import web


def client_ip(request: web.Request) -> str:
    """The caller's address, as rate limits key it."""
    return request.remote or "unknown"
