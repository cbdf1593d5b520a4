"""Words for people. The JSON API names a refused field and its problem as the validator and the
engine put it ("password": "Expected `str` of length >= 8"); pages say it as a sentence ("Use at
least 8 characters."). Every page translates here, so the two never drift apart field by field.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from engine import inputs

LABELS = {
    "email": "email address", "password": "password", "name": "name", "phone": "phone number",
    "business_name": "business name", "account_type": "account type", "q": "search words",
    "date_from": "start date", "date_to": "end date", "per_page": "number per page",
    "radius_km": "distance", "lat": "latitude", "lng": "longitude",
    "accept_terms": "terms", "attendees": "attendees", "network": "mobile money network",
    "method": "payment method",
}

# checkout refusals (engine/orders.py codes) in words for people
ORDER_REFUSALS = {
    "hold_expired": "Your tickets were released because the time to pay ran out. Choose again.",
    "unknown_hold": "Your tickets were released because the time to pay ran out. Choose again.",
    "payment_in_progress": "A payment for this order is under way. Finish it or wait for it to "
                           "fail before changing anything.",
    "payment_pending": "A payment for this order is under way. Finish it or wait for it to fail.",
    "already_paid": "This order is already paid.",
    "cancelled": "This order was cancelled.",
    "payment_not_started": "The payment could not be started. Try again, or choose another way "
                           "to pay.",
    "too_many_attempts": "There were too many payment attempts for this order.",
    "login_required": "Log in to buy tickets for this event.",
}


def order_refusal(code: str, message: str) -> str:
    """A refused checkout, payment or cancellation as a sentence."""
    return ORDER_REFUSALS.get(code, sentence(message))


def field_key(field: str) -> str:
    """`billing.email` or `attendees[1].name` -> the last part, whose wording applies."""
    return re.split(r"[.\]]", field)[-1].lstrip("[") or field


def label(field: str) -> str:
    return LABELS.get(field, field.replace("_", " "))


def sentence(text: str) -> str:
    """`"email or password is wrong"` -> `"Email or password is wrong."`"""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def _pattern_problem(field: str, _: re.Match[str]) -> str:
    if field == "email":
        return "Enter an email address like name@example.com."
    if field == "phone":
        return "Enter a phone number like +265 991 234 567."
    return "This has characters that are not allowed here."


_Rule = tuple[re.Pattern[str], Callable[[str, re.Match[str]], str]]
_RULES: list[_Rule] = [(re.compile(p), f) for p, f in [
    (r"^required$", lambda field, _: f"Enter your {label(field)}."),
    (r"^Expected `str` of length >= (\d+)$",
     lambda _, m: "Enter at least one character." if m[1] == "1" else f"Use at least {m[1]} characters."),
    (r"^Expected `str` of length <= (\d+)$", lambda _, m: f"Use at most {m[1]} characters."),
    (r"^Expected `str` matching regex", _pattern_problem),
    (r"^Expected `(int|float)` (>=|<=|>|<) ", lambda *_: "Enter a number in the allowed range."),
    (r"^Expected `(int|float)`", lambda *_: "Enter a number."),
    (r"^Expected `datetime`|^Invalid RFC3339", lambda *_: "Enter a date like 2027-01-31."),
    (r"^Invalid enum(eration)? value", lambda *_: "Choose one of the options."),
    (r"^unknown field$", lambda *_: "This is not part of the form."),
    (r"^repeated$", lambda *_: "Give this only once."),
    (r"^already registered$", lambda *_: "An account with this email address exists already."),
    (r"^must be accepted$", lambda *_: "Accept the terms to continue."),
    (r"^(\d+) expected$", lambda _, m: f"Give one attendee per ticket ({m[1]} tickets)."),
    (f"^{re.escape(inputs.ONE_LINE_PROBLEM)}$",
     lambda *_: "Use one line of plain text, without special control characters."),
    (f"^{re.escape(inputs.CONTROL_PROBLEM)}$",
     lambda *_: "Remove the invisible control characters from this."),
    (f"^{re.escape(inputs.TIME_PROBLEM)}$",
     lambda *_: f"Choose a date between {inputs.EARLIEST.year} and {inputs.LATEST.year}."),
]]


def field_problem(field: str, problem: str) -> str:
    """One refused field's problem as a sentence."""
    field = field_key(field)
    for pattern, say in _RULES:
        if match := pattern.search(problem):
            return say(field, match)
    return sentence(problem)


def form_errors(fields: dict[str, str]) -> dict[str, str]:
    """Each refused field's problem as a sentence, for the message beside the field."""
    return {field: field_problem(field, problem) for field, problem in fields.items()}


def form_message(message: str, fields: dict[str, str]) -> str:
    """The sentence at the top of a refused form: the engine's own message when it refused the
    whole form, else a pointer to the fields (whose problems are said beside them)."""
    if not fields:
        return sentence(message)
    if len(fields) == 1:
        return "Please correct the field marked below."
    return "Please correct the fields marked below."


def page_message(message: str, fields: dict[str, str]) -> str:
    """An error page's sentence: each refused field by its name, else the message."""
    if not fields:
        return sentence(message)
    return " ".join(f"{label(f)[:1].upper()}{label(f)[1:]}: {field_problem(f, p)}"
                    for f, p in fields.items())


# A refused hold, by the API's code; `{name}` is filled from the refusal's fields. The event
# page's script formats the same templates (handed to it in the page), so words live here only.
HOLD_WORDS = {
    "not_enough": "Only {available} left. Choose {available} or fewer.",
    "sold_out": "These tickets just sold out. Choose another kind.",
    "seat_unavailable": "This seat was just taken. Pick another.",
    "basket_exists": "You already have tickets on hold for this event. Finish or remove them first.",
    "limit_exceeded": "You can have at most {limit} of these tickets; you already have {already}.",
    "event_limit_exceeded": "This event allows {limit} tickets per buyer; you already have {already}.",
    "below_minimum": "Choose at least {minimum} of these tickets.",
    "above_maximum": "Choose at most {maximum} of these tickets in one order.",
    "sale_not_open": "Sales for these tickets have not opened yet.",
    "sale_closed": "Sales for these tickets have ended.",
    "not_on_sale": "Tickets for this event are not on sale right now.",
    "not_loaded": "Tickets for this event are not on sale right now.",
    "rate_limited": "Too many tries just now. Wait a moment and try again.",
    "login_required": "Log in to buy tickets for this event.",
    "no_adjacent_run": "There are not {quantity} seats together there. Try fewer seats, another "
                       "section or another price.",
    "empty": "Choose at least one ticket or seat.",
    "invalid": "Choose a number of tickets for at least one kind.",
    "invalid_best": "Choose how many seats you want, from 1 to 100.",
    "unknown_package": "That choice is not part of this event. Reload the page and choose again.",
    "unknown_seat": "That seat is not part of this event. Reload the page and choose again.",
    "unknown_section": "That section is not part of this event. Reload the page and choose again.",
    "seat_required": "These tickets are seated: pick your seats on the map.",
    "idempotency_key_reused": "This page was already used for another choice. Reload it and "
                              "choose again.",
    "hold_id_taken": "This page was already used for another choice. Reload it and choose again.",
    "hold_already_sold": "You have already bought these tickets.",
    "csrf_failed": "This page is out of date. Reload it and try again.",
    # said by the page's script before anything is sent
    "seat_limit": "You can choose up to {limit} seats in one order.",
    "seat_taken_live": "A seat you chose was just taken. Pick another.",
    "network": "We could not reach Kwika. Check your connection and try again.",
}


def hold_problem(code: str, fields: dict[str, str], message: str = "") -> str:
    """A refused hold in words: `("not_enough", {"available": "3"})` -> `"Only 3 left. Choose 3
    or fewer."`; an unknown code says the API's message as a sentence."""
    template = HOLD_WORDS.get(code)
    if template is None:
        return sentence(message) or "Your choice could not be held. Try again."
    try:
        return template.format_map(fields)
    except (KeyError, ValueError, IndexError):
        return sentence(message) or template
