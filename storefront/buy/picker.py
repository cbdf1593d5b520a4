"""The buying half of the event page: the package rows with their steppers, the seat map's
container, the summary with one Continue button, and the form route that makes the hold when the
page's script has not loaded.

    GET  /events/{slug}        the event page (pages.py routes it here)
    POST /events/{slug}/hold   the pickers' form: hold (or best available), 303 to /holds/{id};
                               a refusal re-renders the page with the reason in words

The hold is made by the same calls as the JSON API (api_holds.attempt_hold and
attempt_best_available), with the form's idempotency key, so a double submit is one hold.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime

from aiohttp import web

from engine import catalog_types as t
from engine.errors import DomainError, NotFound
from engine.prices import package_range
from storefront.api import convert
from storefront.api_holds import (
    BestAvailable,
    HoldAttempt,
    Selection,
    attempt_best_available,
    attempt_hold,
    idempotency_key,
    keep_guest,
)
from storefront.appkeys import DETAILS
from storefront.availability import with_availability
from storefront.buy.choosing import rows
from storefront.calendar import google_calendar_link, share_links
from storefront.covers import cover_svg
from storefront.errors import ApiError, status_for
from storefront.forms import read_form
from storefront.render import render
from storefront.urls import public_url
from storefront.wording import HOLD_WORDS, hold_problem

routes = web.RouteTableDef()
QTY_PREFIX = "qty_"


async def published_event(request: web.Request) -> t.EventDetail:
    """The public event of the request's `{slug}`, with live availability, or 404."""
    slug = request.match_info["slug"]
    detail = await request.app[DETAILS].detail(slug=slug)
    if detail is None:
        raise NotFound(f"there is no event at /events/{slug}")
    return await with_availability(request.app, detail)


def render_event(request: web.Request, event: t.EventDetail, *, problem: str | None = None,
                 chosen: dict[int, int] | None = None, status: int = 200) -> web.Response:
    """The event page; after a refused form, `problem` in words and the quantities `chosen`."""
    now = datetime.now(UTC)
    url = f"{public_url(request)}/events/{event.slug}"
    package_rows = rows(event, now, package_range)
    choosable = [r for r in package_rows if r.can_choose]
    lows = [r.low for r in package_rows if r.low is not None]
    return render(request, "events/detail.html", {
        "event": event, "share": share_links(event.title, url),
        "google_calendar": google_calendar_link(event, url), "url": url,
        "rows": package_rows, "can_buy": bool(choosable),
        "seated_on_sale": any(r.seated for r in choosable),
        "from_price": min(lows) if lows else None,
        "cover": cover_svg(event.category, event.title, event.id),
        "problem": problem, "chosen": chosen or {},
        # one key per page view: a double submit, or a retry after a dropped answer, is one hold
        "idempotency_key": secrets.token_urlsafe(18),
        "hold_words": json.dumps(HOLD_WORDS),
        "price_caps": sorted({p for s in event.sections for p in (s.price_min, s.price_max)}),
    }, status=status)


def _quantities(form, event: t.EventDetail) -> dict[int, int]:
    """`qty_<package id>` fields as {package id: quantity}; blanks and zeros left out."""
    known = {p.id for p in event.packages}
    items: dict[int, int] = {}
    for name, value in form.items():
        if not name.startswith(QTY_PREFIX):
            continue
        raw, value = name[len(QTY_PREFIX):], value.strip()
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 18) or int(raw) not in known:
            raise ApiError(422, "unknown_package", f"{name} is not a package of this event",
                           {name: "unknown package"})
        if value in ("", "0"):
            continue
        if not (value.isascii() and value.isdigit() and len(value) <= 4):
            raise ApiError(422, "invalid", f"{name}: enter a whole number", {name: "not a number"})
        if int(raw) in items:
            raise ApiError(422, "invalid", f"{name} is given twice", {name: "repeated"})
        items[int(raw)] = int(value)
    return items


def _best(form) -> BestAvailable:
    cap = form.get("price_max", "").strip()
    return convert({"quantity": form.get("quantity", "").strip(),
                    "section_id": form.get("section_id", "").strip() or None,
                    "price_max": cap or None}, BestAvailable, strict=False)


@routes.post("/events/{slug}/hold")
async def hold_form(request: web.Request) -> web.Response:
    """The pickers without JavaScript: the chosen quantities (or best available seats) held, then
    303 to the basket; a refusal re-renders the page (422/409/429, 401 to log in) in words."""
    event = await published_event(request)
    form = await read_form(request)
    chosen: dict[int, int] = {}
    try:
        key = idempotency_key(request, form.get("idempotency_key") or None)
        if form.get("mode") == "best":
            attempt: HoldAttempt = await attempt_best_available(request, event.id, _best(form), key)
        else:
            chosen = _quantities(form, event)
            selection = convert({"items": [{"package_id": p, "quantity": q} for p, q in chosen.items()],
                                 "seat_ids": [s for s in form.getall("seat", []) if s]},
                                Selection, strict=False)
            attempt = await attempt_hold(request, event.id, selection, key)
    except ApiError as exc:
        code = "invalid_best" if exc.code == "invalid" and form.get("mode") == "best" else exc.code
        return render_event(request, event, problem=hold_problem(code, exc.fields, exc.message),
                            chosen=chosen, status=exc.status)
    except DomainError as exc:
        if isinstance(exc, NotFound):
            raise
        return render_event(request, event, problem=hold_problem(exc.code, exc.fields, exc.message),
                            chosen=chosen, status=status_for(exc))
    if attempt.refused is not None:
        error = attempt.refused
        response = render_event(request, event, chosen=chosen, status=error.status,
                                problem=hold_problem(error.code, error.fields, error.message))
        response.headers.update(error.headers)
        keep_guest(request, response, attempt)
        return response
    assert attempt.hold is not None
    done = web.HTTPSeeOther(f"/holds/{attempt.hold.id}")
    keep_guest(request, done, attempt)
    raise done
