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
