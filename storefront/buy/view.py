"""What the buying pages show of a hold or an order: its lines in words (package names, seats by
section, row and number), one label per ticket, the amounts, and the form a checkout posts
(read and checked field by field, so every problem is said beside its field at once)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
from aiohttp import web
from multidict import MultiDictProxy

from engine import catalog_types as t
from engine.errors import NotFound
from engine.inventory import HoldLine, HoldSeat
from engine.orders import Attendee, Billing, Email, PersonName, Phone
from storefront.api import convert
from storefront.appkeys import CATALOG
from storefront.buy.flow import CheckoutIn, PayIn
from storefront.errors import ApiError
from storefront.wording import field_problem

METHODS = {"card": "Card", "mobile_money": "Mobile money", "bank_transfer": "Bank transfer"}
NETWORKS = {"mpesa": "M-Pesa", "airtel": "Airtel Money", "tnm": "TNM Mpamba"}


@dataclass
class Line:
    name: str
    quantity: int
    unit: int
    amount: int


@dataclass
class SeatRow:
    package: str
    section: str
    row: str | None
    seat: str
    price: int

    @property
    def words(self) -> str:
        row = f", row {self.row}" if self.row else ""
        return f"{self.section}{row}, seat {self.seat}"


@dataclass
class Summary:
    """A hold or an order as the pages list it."""

    event: t.EventDetail
    lines: list[Line]
    seats: list[SeatRow]
    fee_per_ticket: int
    fees: int
    subtotal: int
    total: int
    currency: str
    tickets: list[str] = field(default_factory=list)  # one label per ticket, in attendee order

    @property
    def count(self) -> int:
        return len(self.tickets)


async def event_of(request: web.Request, event_id: int) -> t.EventDetail:
    event = await request.app[CATALOG].event_detail(event_id=event_id, public_only=False)
    if event is None:
        raise NotFound(f"no event with id {event_id}")
    return event


async def summary(request: web.Request, event: t.EventDetail, items: list[HoldLine],
                  seats: list[HoldSeat], fee_per_ticket: int,
                  fees: int | None = None) -> Summary:
    names = {p.id: p.name for p in event.packages}
    lines = [Line(names.get(i.package_id, "Tickets"), i.quantity, i.unit_price,
                  i.quantity * i.unit_price) for i in items]
    labels = await request.app[CATALOG].seat_labels(event.id, [s.seat_id for s in seats])
    rows = []
    for s in seats:
        where = labels.get(s.seat_id) or t.SeatLabel(section="Seat", row=None, seat=str(s.seat_id))
        rows.append(SeatRow(names.get(s.package_id, "Seat"), where.section, where.row, where.seat,
                            s.price))
    tickets = [line.name for line in lines for _ in range(line.quantity)]
    tickets += [f"{r.package} · {r.words}" for r in rows]
    subtotal = sum(x.amount for x in lines) + sum(r.price for r in rows)
    fees = fee_per_ticket * len(tickets) if fees is None else fees
    return Summary(event, lines, rows, fee_per_ticket, fees, subtotal, subtotal + fees,
                   event.currency, tickets)


def countdown(expires_at: datetime | None, now: datetime) -> dict[str, Any] | None:
    """The countdown of a hold, from the server's clock: the page counts down from `now`."""
    if expires_at is None:
        return None
    left = max(0, int((expires_at - now).total_seconds()))
    return {"expires": expires_at, "now": now, "left": left,
            "text": f"{left // 60}:{left % 60:02d}"}


# --- the checkout form -------------------------------------------------------------------------
@dataclass
class CheckoutForm:
    """The checkout form as posted: its values (to show again) and each field's problem."""

    values: dict[str, str]
    errors: dict[str, str]
    checkout: CheckoutIn | None = None
    pay: PayIn | None = None


def _check(errors: dict[str, str], name: str, value: str, typ: Any, required: bool = True) -> None:
    if not value:
        if required:
            errors[name] = field_problem(name.rsplit("_", 1)[-1], "required")
        return
    try:
        msgspec.convert(value, typ)
    except msgspec.ValidationError as exc:
        problem = str(exc).split(" - at ")[0]
        errors[name] = field_problem(name.rsplit("_", 1)[-1], problem)


def read_checkout(form: MultiDictProxy[str], tickets: int) -> CheckoutForm:
    """Every field of the checkout form checked at once; `checkout` and `pay` when all pass."""
    values = {k: v.strip() for k, v in form.items() if k != "csrf_token"}
    errors: dict[str, str] = {}
    same = values.get("same_for_all") == "on"
    _check(errors, "billing_name", values.get("billing_name", ""), PersonName)
    _check(errors, "billing_email", values.get("billing_email", ""), Email)
    _check(errors, "billing_phone", values.get("billing_phone", ""), Phone, required=False)
    attendees: list[dict[str, str]] = []
    if not same:
        for i in range(tickets):
            prefix = f"attendee_{i}_"
            if not any(f"{prefix}{f}" in values for f in ("name", "email")):
                break  # the form sent fewer attendees than tickets: the engine says how many
            _check(errors, prefix + "name", values.get(prefix + "name", ""), PersonName)
            _check(errors, prefix + "email", values.get(prefix + "email", ""), Email)
            _check(errors, prefix + "phone", values.get(prefix + "phone", ""), Phone, required=False)
            attendees.append({f: values[prefix + f] for f in ("name", "email", "phone")
                              if values.get(prefix + f)})
    if values.get("accept_terms") != "on":
        errors["accept_terms"] = field_problem("accept_terms", "must be accepted")
    method = values.get("method", "")
    if method not in METHODS:
        errors["method"] = "Choose how to pay."
    elif method == "mobile_money":
        if values.get("network") not in NETWORKS:
            errors["network"] = "Choose your mobile money network."
        _check(errors, "momo_phone", values.get("momo_phone", ""), Phone,
               required=not values.get("billing_phone"))
    if errors:
        return CheckoutForm(values, errors)
    billing = {f: values[f"billing_{f}"] for f in ("name", "email", "phone") if values.get(f"billing_{f}")}
    try:
        checkout = convert({"billing": billing, "accept_terms": True, "use_buyer_details": same,
                            "attendees": attendees}, CheckoutIn)
        pay = read_pay(values)
    except ApiError as exc:
        return CheckoutForm(values, {form_field(k): field_problem(k, v) for k, v in exc.fields.items()})
    return CheckoutForm(values, {}, checkout, pay)


def read_pay(values: dict[str, str]) -> PayIn:
    """The payment part of a form (checkout, or a retry on the payment page)."""
    method = values.get("method", "")
    body: dict[str, str] = {"method": method}
    if method == "mobile_money":
        body["network"] = values.get("network", "")
        if values.get("momo_phone"):
            body["phone"] = values["momo_phone"]
    return convert(body, PayIn)


def form_field(api_field: str) -> str:
    """An API field name (`billing.email`, `attendees[1].name`, `phone`) as the form's field."""
    name = api_field.replace("billing.", "billing_").replace("].", "_").replace("attendees[", "attendee_")
    return {"phone": "momo_phone"}.get(name, name)


def prefill(values: dict[str, str], billing: Billing | None, attendees: list[Attendee]) -> None:
    """Fill an empty form from an earlier draft (the back button) or the account."""
    if billing is not None:
        for f in ("name", "email", "phone"):
            values.setdefault(f"billing_{f}", getattr(billing, f) or "")
    if attendees and any(a != attendees[0] for a in attendees):
        values.setdefault("same_for_all", "")
        for i, a in enumerate(attendees):
            for f in ("name", "email", "phone"):
                values.setdefault(f"attendee_{i}_{f}", getattr(a, f) or "")
