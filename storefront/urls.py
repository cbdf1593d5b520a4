"""The site's own absolute address, for links that leave it: share links, calendar files, the
canonical URL."""

from __future__ import annotations

from aiohttp import web

from storefront.appkeys import SETTINGS


def public_url(request: web.Request) -> str:
    """`KWIKA_PUBLIC_URL` when it is set; otherwise the address this request was served on
    (`served_url`). Behind a proxy or TLS terminator, set KWIKA_PUBLIC_URL."""
    settings = request.app[SETTINGS]
    return settings.public_url or served_url(request)


def served_url(request: web.Request) -> str:
    """The address `request` was served on: the listening socket's own address and port (what
    `kwika up --port N` serves), not the Host header, which the client chooses and which would
    let anyone put their own site into the links Kwika hands out."""
    settings = request.app[SETTINGS]
    sockname = request.get_extra_info("sockname")
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        host, port = sockname[0], sockname[1]
    else:  # a Unix socket, or the connection is gone
        host, port = settings.host, settings.port
    if ":" in host:
        host = f"[{host}]"
    default_port = 443 if request.scheme == "https" else 80
    return f"{request.scheme}://{host}" + ("" if port == default_port else f":{port}")
