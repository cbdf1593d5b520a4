"""The buying pages, from the basket to the confirmation (server-rendered; checkout.js adds the
live countdown, polling and small conveniences, and every page works without it):

    GET  /holds/{hold_id}                 the basket: lines, seats, total, countdown (owner only)
    POST /holds/{hold_id}/release         "Remove": the hold goes back, to the event page
    GET  /holds/{hold_id}/checkout        attendees, billing, terms, how to pay
    POST /holds/{hold_id}/checkout        the order draft and its first payment attempt, then
                                          the gateway's page (or the payment page: mobile money)
    GET  /orders/{number}/payment         where the payment stands (the gateway's return_url)
    POST /orders/{number}/payment         another attempt after a failed one
    POST /orders/{number}/cancel          cancel before paying: the hold goes back
    GET  /orders/{number}                 the confirmation

Orders are seen by their buyer or with their signed link (`?t=`, storefront/buy/access.py).
The steps themselves are storefront/buy/flow.py, which the JSON routes call too. A form is
answered with a redirect (post/redirect/get): a refresh or the back button never posts again, and
the engine refuses a second payment attempt while one is under way.
"""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from engine.errors import DomainError, Invalid, NotFound
from engine.inventory import Hold, event_of_hold
from engine.orders import OrderDraft
from engine.payments.service import PaymentRefused
from storefront.appkeys import EVENT_CACHE, INVENTORY, ORDERS, SESSION, USER
from storefront.buy import flow
from storefront.buy.access import check_access, order_link
from storefront.buy.view import (
    METHODS,
    NETWORKS,
    countdown,
    event_of,
    form_field,
    prefill,
    read_checkout,
    read_pay,
    summary,
)
from storefront.buyer import current_buyer
from storefront.errors import ApiError, status_for
from storefront.forms import read_form
from storefront.render import render
from storefront.urls import public_url
from storefront.wording import field_problem, order_refusal

routes = web.RouteTableDef()
HOLD = r"/holds/{hold_id:H[0-9]{1,14}-[A-Za-z0-9_-]{1,48}}"
ORDER = r"/orders/{number:ORD-[A-Za-z0-9-]{1,60}}"
NO_STORE = {"Cache-Control": "no-store"}
RELEASED = "The time to pay ran out, so the tickets went back on sale. You can choose again."


# --- helpers ---------------------------------------------------------------------------------
def _notice(request: web.Request, status: int, heading: str, message: str,
            event=None, login_next: str | None = None) -> web.Response:
    return render(request, "buy/notice.html", {
        "heading": heading, "message": message, "event": event, "login_next": login_next,
        "status": status}, status=status, headers=NO_STORE)


def _link(request: web.Request, draft: OrderDraft, page: str = "") -> str:
    """A page of the order, by its signed link when the caller came with one."""
    base = f"/orders/{draft.order_number}{page}"
    token = request.query.get("t")
    return f"{base}?{urlencode({'t': token})}" if token else base


async def _released(request: web.Request, event_id: int) -> web.Response:
    """The hold is gone: its tickets are given back now (not at the sweeper's next round)."""
    await request.app[INVENTORY].expire(event_id)
    return _notice(request, 410, "Your tickets were released", RELEASED,
                   event=await event_of(request, event_id))


async def _own_hold(request: web.Request) -> tuple[Hold, object] | web.Response:
    """The caller's live hold and its clock; else the page to answer with (the order of a hold
    already paid for or being paid, 404 for someone else's, 410 once it has lapsed)."""
    hold_id = request.match_info["hold_id"]
    event_id = event_of_hold(hold_id)
    if event_id is None:
        raise NotFound("there is no basket here")
    await request.app[EVENT_CACHE].get(event_id)
    hold, now = await request.app[INVENTORY].find_hold(event_id, hold_id=hold_id)
    buyer = current_buyer(request)
    if hold is not None and buyer is not None and hold.buyer == buyer:
        return hold, now
    if hold is not None:
        return _notice(request, 404, "This basket is not here", "There is no basket at this "
                       "address: the link may be wrong, or it belongs to someone else.",
                       event=await event_of(request, event_id))
    draft = await request.app[ORDERS].draft(event_id, hold_id)
    if draft is not None and draft.buyer == buyer and draft.status in ("paid", "awaiting_payment",
                                                                       "refund_due"):
        page = "" if draft.status == "paid" else "/payment"
        raise web.HTTPSeeOther(f"/orders/{draft.order_number}{page}")
    return await _released(request, event_id)


def _timer(hold: Hold | None, now) -> dict | None:
    return countdown(hold.expires_at if hold else None, now)


# --- the basket ------------------------------------------------------------------------------
@routes.get(HOLD)
async def basket(request: web.Request) -> web.Response:
    found = await _own_hold(request)
    if isinstance(found, web.Response):
        return found
    hold, now = found
    facts = await request.app[EVENT_CACHE].get(hold.event_id)
    event = await event_of(request, hold.event_id)
    s = await summary(request, event, hold.items, hold.seats, facts.service_fee)
    return render(request, "buy/basket.html", {
        "hold": hold, "s": s, "timer": _timer(hold, now), "error": None}, headers=NO_STORE)


@routes.post(HOLD + "/release")
async def release(request: web.Request) -> web.Response:
    found = await _own_hold(request)
    if isinstance(found, web.Response):
        return found
    hold, _ = found
    facts = await request.app[EVENT_CACHE].get(hold.event_id)
    try:
        await request.app[INVENTORY].release(hold.event_id, hold.id, hold.buyer)
    except DomainError as exc:
        return _notice(request, status_for(exc), "Your tickets are still held",
                       order_refusal(exc.code, exc.message), event=await event_of(request, hold.event_id))
    raise web.HTTPSeeOther(f"/events/{facts.slug}")


# --- checkout --------------------------------------------------------------------------------
async def _checkout_page(request: web.Request, hold: Hold, now, values: dict[str, str],
                         errors: dict[str, str], error: str | None, status: int = 200
                         ) -> web.Response:
    facts = await request.app[EVENT_CACHE].get(hold.event_id)
    event = await event_of(request, hold.event_id)
    s = await summary(request, event, hold.items, hold.seats, facts.service_fee)
    values.setdefault("method", "card")
    values.setdefault("same_for_all", "on")
    return render(request, "buy/checkout.html", {
        "hold": hold, "s": s, "timer": _timer(hold, now), "f": values, "errors": errors,
        "error": error, "methods": METHODS, "networks": NETWORKS}, status=status, headers=NO_STORE)


def _login_needed(request: web.Request, facts) -> bool:
    buyer = current_buyer(request) or ""
    return buyer.startswith("g:") and not facts.allow_guest_checkout


async def _draft_redirect(request: web.Request, hold: Hold) -> None:
    """A hold whose order is being paid (or paid) shows that order, never a second form."""
    draft = await request.app[ORDERS].draft(hold.event_id, hold.id)
    if draft is not None and draft.status in ("awaiting_payment", "paid", "refund_due"):
        raise web.HTTPSeeOther(f"/orders/{draft.order_number}"
                               + ("" if draft.status == "paid" else "/payment"))


async def _checkout_hold(request: web.Request) -> tuple[Hold, object] | web.Response:
    """The caller's live hold to check out, or the page to show instead: not theirs or gone, a
    login the event requires, or (by redirect) the order already being paid."""
    found = await _own_hold(request)
    if isinstance(found, web.Response):
        return found
    hold, _ = found
    facts = await request.app[EVENT_CACHE].get(hold.event_id)
    if _login_needed(request, facts):
        return _notice(request, 401, "Log in to check out", "This event sells tickets to "
                       "people with an account only.", login_next=request.path)
    await _draft_redirect(request, hold)
    return found


@routes.get(HOLD + "/checkout")
async def checkout_form(request: web.Request) -> web.Response:
    found = await _checkout_hold(request)
    if isinstance(found, web.Response):
        return found
    hold, now = found
    values: dict[str, str] = {}
    draft = await request.app[ORDERS].draft(hold.event_id, hold.id)
    if draft is not None:
        prefill(values, draft.billing, draft.attendees)
    elif (user := request.get(USER)) is not None:
        values.update({"billing_name": user.name, "billing_email": user.email})
    return await _checkout_page(request, hold, now, values, {}, None)


@routes.post(HOLD + "/checkout")
async def checkout_submit(request: web.Request) -> web.Response:
    found = await _checkout_hold(request)  # a replayed form: the payment under way, not another
    if isinstance(found, web.Response):
        return found
    hold, now = found
    tickets = sum(i.quantity for i in hold.items) + len(hold.seats)
    form = read_checkout(await read_form(request), tickets)
    if form.errors:
        return await _checkout_page(request, hold, now, form.values, form.errors,
                                    _top(len(form.errors)), 422)
    assert form.checkout is not None and form.pay is not None
    try:
        flow.check_pay(form.pay, form.checkout.billing.phone)
        draft = await flow.check_out(request, hold.id, form.checkout)
    except DomainError as exc:
        if exc.code in ("hold_expired", "unknown_hold"):
            return await _released(request, hold.event_id)
        await _draft_redirect(request, hold)
        errors = {form_field(k): field_problem(k, v) for k, v in exc.fields.items()}
        if exc.code == "attendees_mismatch":
            errors = {"attendees": field_problem("attendees", exc.fields.get("attendees", ""))}
        return await _checkout_page(request, hold, now, form.values, errors,
                                    _top(len(errors)) if errors else order_refusal(exc.code, exc.message),
                                    status_for(exc))
    return await _pay(request, draft, form.pay)


def _top(count: int) -> str:
    return ("Please correct the field marked below." if count == 1
            else "Please correct the fields marked below.")


async def _pay(request: web.Request, draft: OrderDraft, pay) -> web.Response:
    """Start an attempt and send the buyer where it says: the gateway's page, or ours."""
    status_page = _link(request, draft, "/payment")
    try:
        draft = await flow.start_payment(request, draft, pay)
    except (PaymentRefused, DomainError) as exc:
        if isinstance(exc, Invalid) and exc.fields:
            raise
        raise web.HTTPSeeOther(status_page) from None  # the page says what became of it
    attempt = draft.payments[-1] if draft.payments else None
    if draft.status == "awaiting_payment" and attempt and attempt.action and \
            attempt.action.kind == "redirect" and attempt.action.url:
        raise web.HTTPSeeOther(attempt.action.url)
    raise web.HTTPSeeOther(_link(request, draft, "" if draft.status == "paid" else "/payment"))


# --- payment status --------------------------------------------------------------------------
async def _order(request: web.Request) -> OrderDraft:
    number = request.match_info["number"]
    return check_access(request, await request.app[ORDERS].find(number), number)


async def _payment_page(request: web.Request, draft: OrderDraft, *, error: str | None = None,
                        errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
                        status: int = 200) -> web.Response:
    hold, now = await request.app[INVENTORY].find_hold(draft.event_id, hold_id=draft.hold_id)
    event = await event_of(request, draft.event_id)
    s = await summary(request, event, draft.items, draft.seats, 0, fees=draft.fees)
    attempt = draft.payments[-1] if draft.payments else None
    owner = current_buyer(request) == draft.buyer
    values = dict(values or {})
    values.setdefault("method", "card")
    values.setdefault("billing_phone", draft.billing.phone or "")
    return render(request, "buy/payment.html", {
        "d": draft, "s": s, "attempt": attempt, "hold": hold, "timer": _timer(hold, now),
        "owner": owner, "error": error, "errors": errors or {}, "f": values,
        "methods": METHODS, "networks": NETWORKS, "here": _link(request, draft, "/payment"),
        "poll": f"/api/orders/{draft.order_number}?verify=1"
                + (f"&{urlencode({'t': request.query['t']})}" if request.query.get("t") else ""),
    }, status=status, headers=NO_STORE)


@routes.get(ORDER + "/payment")
async def payment_status(request: web.Request) -> web.Response:
    draft = await flow.refreshed(request, await _order(request))
    if draft.status == "paid":
        raise web.HTTPSeeOther(_link(request, draft))
    return await _payment_page(request, draft)


@routes.post(ORDER + "/payment")
async def payment_retry(request: web.Request) -> web.Response:
    draft = await flow.refreshed(request, await _order(request))
    if draft.status not in ("draft", "payment_failed"):  # paying or paid: show it, never again
        raise web.HTTPSeeOther(_link(request, draft, "" if draft.status == "paid" else "/payment"))
    values = {k: v.strip() for k, v in (await read_form(request)).items() if k != "csrf_token"}
    errors: dict[str, str] = {}
    if values.get("method") not in METHODS:
        errors["method"] = "Choose how to pay."
    elif values["method"] == "mobile_money" and values.get("network") not in NETWORKS:
        errors["network"] = "Choose your mobile money network."
    if not errors:
        try:
            pay = read_pay(values)
            flow.check_pay(pay, draft.billing.phone)
            return await _pay(request, draft, pay)
        except (ApiError, Invalid) as exc:
            errors = {form_field(k): field_problem(k, v) for k, v in exc.fields.items()}
            if not errors:
                return await _payment_page(request, draft, error=order_refusal(
                    getattr(exc, "code", ""), exc.message), values=values, status=422)
    return await _payment_page(request, draft, error=_top(len(errors)), errors=errors,
                               values=values, status=422)


@routes.post(ORDER + "/cancel")
async def cancel_order(request: web.Request) -> web.Response:
    draft = await _order(request)
    try:
        await flow.cancel(request, draft)
    except DomainError as exc:
        return await _payment_page(request, draft, error=order_refusal(exc.code, exc.message),
                                   status=status_for(exc))
    event = await event_of(request, draft.event_id)
    return _notice(request, 200, "Your order was cancelled",
                   "Nothing was charged, and the tickets are back on sale.", event=event)


# --- confirmation ----------------------------------------------------------------------------
@routes.get(ORDER)
async def confirmation(request: web.Request) -> web.Response:
    draft = await flow.refreshed(request, await _order(request))
    if draft.status != "paid":
        raise web.HTTPSeeOther(_link(request, draft, "/payment"))
    event = await event_of(request, draft.event_id)
    s = await summary(request, event, draft.items, draft.seats, 0, fees=draft.fees)
    paid = next((a for a in reversed(draft.payments) if a.state == "succeeded"), None)
    guest = draft.buyer.startswith("g:")
    return render(request, "buy/confirmation.html", {
        "d": draft, "s": s, "paid": paid, "methods": METHODS, "guest": guest,
        "signed_in": request.get(SESSION) is not None,
        "link": f"{public_url(request)}{order_link(request, draft.order_number)}",
        "tickets_link": _link(request, draft, "/tickets"),
    }, headers=NO_STORE)
