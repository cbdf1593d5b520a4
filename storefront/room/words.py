"""The waiting room in words for people: its states, the visitor's place, and refusals. The JSON
API keeps the codes; the pages and the API's messages say them from here."""

from __future__ import annotations

STATES = {
    "open": "The line is moving.",
    "before_release": "Tickets are not on sale yet. Everyone who arrives before the sale opens "
                      "gets a place drawn at random when it does, so there is no need to rush.",
    "paused": "The organiser has paused the line for a moment. Your place is kept.",
    "sold_out": "Sold out: every ticket has been sold. Thank you for waiting.",
    "all_held": "Every ticket left is in someone's basket right now. If they do not pay in "
                "time, the tickets come back and the line moves again.",
    "all_offered": "Every ticket left has been offered to the people ahead of you. If they do "
                   "not buy, the line moves on.",
    "not_on_sale": "This event is not on sale right now.",
    "off": "There is no line for this event right now.",
}

PASS_REFUSALS = {
    "pass_required": "This sale goes through the waiting room: join the line on the event's "
                     "queue page, and you can choose tickets when it is your turn.",
    "pass_invalid": "Your waiting-room pass could not be read. Join the line again.",
    "pass_other_event": "Your waiting-room pass is for another event. Join this event's line.",
    "pass_not_yours": "This waiting-room pass belongs to someone else. Join the line yourself.",
    "pass_expired": "Your turn ran out before you chose tickets. Join the line again.",
    "pass_replaced": "This waiting-room pass is no longer valid: you have a newer one.",
    "pass_used": "Your waiting-room pass was used for a basket already. Join the line again to "
                 "choose again.",
    "bad_input": "Your waiting-room pass could not be read. Join the line again.",
}

JOIN_REFUSALS = {
    "room_off": "There is no line for this event right now: go straight to the event.",
    "unconfigured": "There is no line for this event right now: go straight to the event.",
    "sold_out": STATES["sold_out"],
    "proof_used": "This check was already used. Reload the page to get a new one.",
    "proof_expired": "This check took too long. Reload the page to get a new one.",
    "proof_invalid": "The check did not come out right. Reload the page and try again.",
    "rate_limited": "Too many people joined from your network just now. Wait a moment.",
}


def place_words(state: str, place: str, ahead: int | None) -> str:
    """One sentence about the visitor's place."""
    if place == "admitted":
        return "It is your turn! Choose your tickets now."
    if place == "used":
        return "You have a basket for this event: check out before it runs out."
    if place == "prequeue":
        return "You are in the line. When the sale opens, your place is drawn at random."
    if place == "queued" and state == "open":
        if not ahead:
            return "You are next."
        return f"There {'is' if ahead == 1 else 'are'} {ahead:,} {'person' if ahead == 1 else 'people'} ahead of you."
    return STATES.get(state, "")
