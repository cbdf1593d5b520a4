"""Server-side rendering with Jinja2 (autoescaped) and the page error view."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from storefront.appkeys import TEMPLATES, USER
from storefront.auth import csrf_token
from storefront.urls import public_url
from storefront.wording import page_message


def render(request: web.Request, template: str, context: dict[str, Any] | None = None,
           status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    env = request.app[TEMPLATES]
    ctx = {"request": request, "user": request.get(USER), "csrf_token": csrf_token(request),
           "site_url": public_url(request)}
    ctx.update(context or {})
    html = env.get_template(template).render(ctx)
    return web.Response(text=html, status=status, content_type="text/html", headers=headers)


def error_page(request: web.Request, status: int, message: str,
               fields: dict[str, str] | None = None) -> web.Response:
    """The error page: the refusal in words for people (storefront/wording.py)."""
    return render(request, "error.html", {"status": status,
                                          "message": page_message(message, fields or {})},
                  status=status)
