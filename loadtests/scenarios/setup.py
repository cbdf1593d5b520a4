"""What each scenario needs in a fresh Kwika, made through its provider API as a promoter would
(the provider's verification, an admin's job, is set in the database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from loadtests.bench_http import _call, _make_provider

GA_PACKAGES = (("VIP", 0.1, 60_000), ("General Admission", 0.6, 25_000), ("Early Bird", 0.3, 15_000))


def _event(stack, token: str, title: str, **extra) -> dict:
    starts = datetime.now(UTC) + timedelta(days=30)
    return _call(stack.base, "POST", "/api/provider/events", {
        "title": f"{title} {uuid.uuid4().hex[:4]}", "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=6)).isoformat(), **extra}, token)


def ga_event(stack, token: str, tickets: int) -> dict:
    """An event of `tickets` tickets in three packages, published."""
    ev = _event(stack, token, "Load Rush")
    packages = []
    for name, share, price in GA_PACKAGES:
        pkg = _call(stack.base, "POST", f"/api/provider/events/{ev['id']}/packages", {
            "name": name, "price": price, "capacity": round(tickets * share),
            "max_per_order": 4}, token)
        packages.append({"id": pkg["id"], "name": name, "capacity": pkg["capacity"],
                         "weight": share})
    _call(stack.base, "POST", f"/api/provider/events/{ev['id']}/publish", None, token)
    return {"id": ev["id"], "slug": ev["slug"], "packages": packages, "tickets": tickets}


def room_on(stack, token: str, event_id: int, *, rate: float, difficulty: int,
            release_in: float) -> dict:
    release = datetime.now(UTC) + timedelta(seconds=release_in)
    return _call(stack.base, "PATCH", f"/api/provider/events/{event_id}/room", {
        "enabled": True, "rate_per_second": rate, "difficulty": difficulty,
        "release_at": release.isoformat(), "pass_seconds": 300}, token)


def ga_rush(stack, plan: dict) -> dict:
    """1,000 tickets (300 in --short) in three packages; the room on, opening a few seconds after
    the spike has arrived (so the first arrivals form a pre-queue), admitting tickets/10 a second."""
    tickets = plan.get("tickets") or (300 if plan["short"] else 1000)
    token = _make_provider(stack.database_url, stack.base)
    event = ga_event(stack, token, tickets)
    rate = plan.get("rate") or max(20.0, tickets / 10)
    difficulty = plan.get("difficulty", 8)
    room_on(stack, token, event["id"], rate=rate, difficulty=difficulty,
            release_in=plan["spawn_seconds"] + 5)
    plan.update(tickets=tickets, rate=rate, difficulty=difficulty)
    return {"event": event, "room": True, "users": plan["users"], "seconds": plan["seconds"],
            "spawn_seconds": plan["spawn_seconds"], "event_ids": [event["id"]], "token": token}


def bots(stack, plan: dict) -> dict:
    """The GA rush, its clients a tenth bots (the Locust file's weights)."""
    config = ga_rush(stack, plan)
    plan["words_extra"] = ("A tenth of the clients are bots: one address each, a new identity "
                           "as often as the room gives one, no pages, no pauses.")
    return config


def mixed_day(stack, plan: dict, accounts: int = 10) -> dict:
    """The GA rush, and buyer accounts for the visitors who read My tickets."""
    config = ga_rush(stack, plan)
    made = []
    for i in range(accounts):
        email = f"holder-{i}-{uuid.uuid4().hex[:6]}@load.test"
        _call(stack.base, "POST", "/api/auth/register", {
            "email": email, "name": f"Holder {i}", "password": "load-password-42",
            "account_type": "buyer"})
        made.append({"email": email, "password": "load-password-42"})
    plan["words_extra"] = ("Half the users buy; the others browse, search, read My tickets "
                           "(signed in) and watch the queue page.")
    return {**config, "accounts": made}
# (name, price, rows, seats per row, rows in --short, seats per row in --short); listed front
# first: the seat map's order, which best available reads as best first
SEAT_SECTIONS = (("Front", 80_000, 10, 20, 4, 15), ("Back", 20_000, 20, 40, 8, 30))


def seated_event(stack, token: str, short: bool) -> dict:
    """A published seated event: each section its own package (so its own price), seated in a
    grid (rows A, B, …), the front section first."""
    ev = _event(stack, token, "Load Seats", requires_seating=True)
    sections = []
    for order, (name, price, rows, per_row, short_rows, short_per_row) in enumerate(SEAT_SECTIONS):
        if short:
            rows, per_row = short_rows, short_per_row
        pkg = _call(stack.base, "POST", f"/api/provider/events/{ev['id']}/packages", {
            "name": name, "price": price, "capacity": rows * per_row, "max_per_order": 4,
            "sort_order": order}, token)
        sec = _call(stack.base, "POST", f"/api/provider/events/{ev['id']}/sections", {
            "name": name, "package_id": pkg["id"], "numbering_type": "grid", "rows": rows,
            "seats_per_row": per_row, "sort_order": order}, token)
        sections.append({"id": sec["id"], "name": name, "package_id": pkg["id"],
                         "seats": sec["capacity"], "rows": rows, "price": price})
    _call(stack.base, "POST", f"/api/provider/events/{ev['id']}/publish", None, token)
    return {"id": ev["id"], "slug": ev["slug"], "sections": sections,
            "front": sections[0]["id"], "back": sections[1]["id"]}


def seat_rush(stack, plan: dict) -> dict:
    """A seated event whose best seats are plain: a Front section of 200 seats (60 in --short)
    in a package of its own at four times the Back's price, and a Back of 800 (240). Buyers race
    for the front from the live seat map or best available.

    The waiting room is off: what this scenario loads is the race for the same few seats (a
    stale seat map, a seat taken between looking and holding, the retry); a room admitting at a
    steady rate would space the buyers out and hide that race, and the GA rush already puts the
    room under a spike."""
    token = _make_provider(stack.database_url, stack.base)
    event = seated_event(stack, token, plan["short"])
    front, back = event["sections"]
    plan.update(front_seats=front["seats"], back_seats=back["seats"], tickets=front["seats"] + back["seats"])
    plan["words"] = (
        f"A seated event: Front {front['seats']:,} seats ({front['rows']} rows) and Back "
        f"{back['seats']:,} ({back['rows']} rows), each its own package. Half the buyers pick 1–4 "
        f"seats side by side from the live seat map, half ask for best available in the Front; "
        f"a seat taken meanwhile means a fresh map and another try (at most 5), and once the "
        f"Front has nothing for them some take the Back and the rest leave. No waiting room: "
        f"the buyers race for the same seats directly.")
    return {"event": event, "room": False, "users": plan["users"], "seconds": plan["seconds"],
            "spawn_seconds": plan["spawn_seconds"], "event_ids": [event["id"]], "token": token,
            "seated": True}
