"""Who may see an order: the buyer who made it, or anyone holding its signed link (a guest's way
back to the order from another device or from the email)."""

from __future__ import annotations

from aiohttp import web

from engine.errors import NotFound
from engine.orders import OrderDraft
from engine.signing import order_path, unsign
from engine.signing import order_token as _order_token
from storefront.appkeys import SETTINGS
from storefront.buyer import current_buyer


def order_token(request: web.Request, order_number: str) -> str:
    """The `t` of an order's signed link (signed for the purpose "order")."""
    return _order_token(request.app[SETTINGS].secret_key, order_number)


def order_link(request: web.Request, order_number: str) -> str:
    return order_path(request.app[SETTINGS].secret_key, order_number)


def may_see(request: web.Request, draft: OrderDraft) -> bool:
    if current_buyer(request) == draft.buyer:
        return True
    token = request.query.get("t", "")
    signed = f"{draft.order_number}.{token}"
    return bool(token) and unsign(request.app[SETTINGS].secret_key, "order", signed) == draft.order_number


def check_access(request: web.Request, draft: OrderDraft | None, number: str) -> OrderDraft:
    """The draft when the caller may see it; otherwise the same 404 as a missing order, so order
    numbers cannot be probed."""
    if draft is None or not may_see(request, draft):
        raise NotFound(f"no order {number}", code="unknown_order")
    return draft
