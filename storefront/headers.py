"""Security headers on every response the app sends, and no server version.

The Content-Security-Policy allows scripts, styles, images, fonts and connections from the site
itself only: no inline script or style (templates put behaviour in static/*.js and looks in
static/*.css), no plugins, no framing by anyone (`frame-ancestors 'none'`), forms post back to the
site. HSTS is sent when cookies are secure, i.e. when the site is served over HTTPS.
"""

from __future__ import annotations

import aiohttp.web_response
from aiohttp import web

from engine.settings import Settings
from storefront.appkeys import SETTINGS

SERVER = "Kwika"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HSTS = "max-age=31536000"


def security_headers(settings: Settings) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "X-Frame-Options": "DENY",
        "Server": SERVER,
    }
    if settings.cookie_secure:
        headers["Strict-Transport-Security"] = HSTS
    return headers


def install(app: web.Application) -> None:
    """Add the headers to every response of `app` (pages, API, static files, errors)."""
    headers = security_headers(app[SETTINGS])

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        own_policy = response.headers.get("Content-Security-Policy", "")
        response.headers.update(headers)
        if own_policy.startswith("sandbox;"):  # a stricter policy of the handler's own stays
            response.headers["Content-Security-Policy"] = own_policy

    app.on_response_prepare.append(add_headers)
    # The few answers aiohttp gives before a request reaches the app (a malformed request line
    # or header: 400) take their Server header from this module constant; it names the Python
    # and aiohttp versions unless replaced. Same value for every app, so setting it twice is fine.
    aiohttp.web_response.SERVER_SOFTWARE = SERVER
