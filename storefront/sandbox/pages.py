"""The sandbox's hosted payment pages: what a buyer sees at a real gateway, served by Kwika.

`GET /sandbox/pay/{id}` shows whatever the payment waits for: the card form, the 3-D Secure
challenge, bank-transfer or USSD instructions, "approve on your phone", or its outcome. Every
form posts back to the payment and is answered with a redirect to that page (post/redirect/get):
a state change happens at most once (SandboxStore.change), so a replayed form, a refresh or the
back button shows the payment's state and never charges again. Right after the outcome the page
sends the buyer on to `return_url?reference=...&status=...`. Forms carry the app's CSRF token.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from aiohttp import web

from engine.errors import NotFound
from storefront.api import json_response
from storefront.appkeys import SETTINGS
from storefront.render import render
from storefront.sandbox.appkeys import STORE
from storefront.sandbox.rules import (
    TEST_CARDS,
    SandboxPayment,
    card_check,
    fail,
    return_link,
    succeed,
)
from storefront.sandbox.store import now_ms

routes = web.RouteTableDef()
MERCHANT = "Kwika"
PAGE = "/sandbox/pay/{id}"


async def _payment(request: web.Request) -> SandboxPayment:
    payment = await request.app[STORE].get(request.match_info["id"])
    if payment is None:
        raise NotFound("there is no sandbox payment here: the link is wrong or has expired")
    return payment


def _page(payment: SandboxPayment, done: bool = False) -> str:
    return f"/sandbox/pay/{payment.id}" + ("?done=1" if done else "")


def _view(payment: SandboxPayment) -> str:
    if payment.final:
        return "result"
    if payment.stage in ("pushed", "processing"):
        return "waiting"
    if payment.stage == "challenge":
        return "challenge"
    return "card" if payment.method == "card" else "instructions"


def _show(request: web.Request, payment: SandboxPayment, *, errors: dict[str, str] | None = None,
          form: dict[str, str] | None = None, status: int = 200) -> web.Response:
    view = _view(payment)
    return render(request, f"sandbox/{view}.html", {
        "p": payment, "merchant": MERCHANT, "cards": TEST_CARDS, "errors": errors or {},
        "form": form or {}, "back": return_link(payment), "page": _page(payment),
        "done": view == "result" and request.query.get("done") == "1",
    }, status=status, headers={"Cache-Control": "no-store"})


async def _change(request: web.Request, step) -> web.Response:
    """Apply `step` to the payment, then show it (forward to the merchant when it just ended)."""
    payment = await _payment(request)
    changed: list[SandboxPayment] = []

    def recorded(p: SandboxPayment) -> SandboxPayment | None:
        new = step(p)
        changed[:] = [new] if new is not None else []
        return new

    now = await request.app[STORE].change(payment.id, recorded) or payment
    raise web.HTTPSeeOther(_page(now, done=bool(changed) and now.final))


@routes.get(PAGE)
async def pay_page(request: web.Request) -> web.Response:
    return _show(request, await _payment(request))


@routes.get(PAGE + "/status")
async def pay_status(request: web.Request) -> web.Response:
    """For the page's polling: where the payment stands, and where to go once it is over."""
    payment = await _payment(request)
    return json_response({"status": payment.status, "stage": payment.stage,
                          "final": payment.final, "url": _page(payment, done=payment.final)},
                         headers={"Cache-Control": "no-store"})


@routes.post(PAGE + "/card")
async def pay_by_card(request: web.Request) -> web.Response:
    payment = await _payment(request)
    form = {k: str(v) for k, v in (await request.post()).items()
            if k in ("card_number", "expiry", "cvc", "name")}
    if payment.method == "card" and payment.stage == "open" and not payment.final:
        today = datetime.now(UTC)
        card, errors = card_check(form.get("card_number", ""), form.get("expiry", ""),
                                  form.get("cvc", ""), today.year, today.month)
        if card is None:
            return _show(request, payment, errors=errors, form=form, status=422)
    else:
        card = None

    def step(p: SandboxPayment) -> SandboxPayment | None:
        if card is None or p.final or p.stage != "open":
            return None
        if card.outcome == "succeeded":
            return succeed(p)
        if card.outcome == "challenge":
            return msgspec.structs.replace(p, stage="challenge")
        return fail(p, card.outcome)

    return await _change(request, step)


@routes.post(PAGE + "/challenge")
async def answer_challenge(request: web.Request) -> web.Response:
    passed = (await request.post()).get("outcome") == "pass"

    def step(p: SandboxPayment) -> SandboxPayment | None:
        if p.final or p.stage != "challenge":
            return None
        return succeed(p) if passed else fail(p, "authentication_failed")

    return await _change(request, step)


@routes.post(PAGE + "/paid")
async def report_paid(request: web.Request) -> web.Response:
    """"I have paid" (bank transfer, USSD): the sandbox "sees" the money after the settle delay."""
    settle = request.app[SETTINGS].sandbox_settle_ms

    def step(p: SandboxPayment) -> SandboxPayment | None:
        if p.final or p.stage != "open" or p.method not in ("bank_transfer", "ussd"):
            return None
        return msgspec.structs.replace(p, stage="processing", due_ms=now_ms() + settle)

    return await _change(request, step)


@routes.post(PAGE + "/cancel")
async def cancel(request: web.Request) -> web.Response:
    return await _change(request, lambda p: None if p.final else fail(p, "cancelled"))

