"""Scenario 2, the seat rush: buyers race for the best seats of a seated event (the Front, a
section of its own at a higher price) with no waiting room between them and the seats.

Half of them choose from the live seat map (`GET /api/events/{id}/seating`, each seat's state at
most a second old): one to four seats side by side, among the best few runs still shown free
(front rows first, then nearest the middle of the row, as people choose), held by id. When a seat
was taken between looking and holding (409 `seat_unavailable`) they look at a fresh map and try
again, leaving aside the seats the refusal named, at most five times. The other half ask for best
available in the Front (`POST /api/events/{id}/best-available`), which picks and holds in one step
and never splits a group. Once the Front has nothing for their group (no run of that many free
seats: 409 `no_adjacent_run`, or none on the map), some take the Back and the rest leave. A hold
is then bought as in the GA rush: checkout, a card payment on the sandbox's hosted page, paid.

    .venv/bin/python -m loadtests.run seat-rush --users 1000
"""

from __future__ import annotations

import random
from collections import defaultdict

import gevent
from locust import constant, task

from loadtests.scenarios.kit import CONFIG, TALLY, Answer, KwikaUser
from loadtests.scenarios.shapes import Spike  # noqa: F401  (Locust finds the shape here)

QUANTITIES = (1, 2, 2, 2, 3, 4)  # the group each buyer wants seated together
TRIES = 5  # holds a map buyer tries before giving up
BEST_RUNS = 6  # a map buyer picks at random among the best runs the map shows
TAKES_BACK = 0.6  # share of buyers who take the Back when the Front has nothing for them


def _row_order(label: str | None) -> tuple[int, str]:
    label = label or ""
    return (len(label), label)  # A..Z, AA.. (engine/inventory.py reads rows the same way)


def best_runs(seat_map: dict, section_id: int, quantity: int, taken: set[int]) -> list[list[int]]:
    """Runs of `quantity` seats side by side the map shows free in the section (leaving out
    `taken`), best first: front rows first, then the run's middle nearest the row's middle."""
    section = next((s for s in seat_map.get("sections", []) if s["id"] == section_id), None)
    if section is None:
        return []
    rows: dict[str | None, list[dict]] = defaultdict(list)
    for seat in section["seats"]:
        rows[seat["row"]].append(seat)
    runs = []
    for rank, row in enumerate(sorted(rows, key=_row_order)):
        seats = sorted(rows[row], key=lambda s: s["column"] or 0)
        middle = (seats[0]["column"] + seats[-1]["column"]) / 2
        free = [s for s in seats if s["status"] == "available" and s["id"] not in taken]
        for i in range(len(free) - quantity + 1):
            group = free[i:i + quantity]
            if group[-1]["column"] - group[0]["column"] != quantity - 1:
                continue  # a gap: not side by side
            centre = (group[0]["column"] + group[-1]["column"]) / 2
            runs.append((rank, abs(centre - middle), [s["id"] for s in group]))
    runs.sort(key=lambda r: (r[0], r[1]))
    return [ids for _, _, ids in runs]


class SeatBuyer(KwikaUser):
    """A person after a group of seats in the Front: chooses, holds, buys once, and is done."""

    abstract = True
    wait_time = constant(0)
    email = "buyer@load.test"

    @task
    def journey(self) -> None:
        event = CONFIG["event"]
        if self.call("GET", f"/api/events/{event['slug']}", "event page"):
            quantity = random.choice(QUANTITIES)
            hold = self.choose(event, quantity)
            if hold is not None and self.buy(hold.js, self.email):
                self.count_seats(event, hold.js)
        self.done()

    def choose(self, event: dict, quantity: int) -> Answer | None:
        raise NotImplementedError

    def front_gone(self, event: dict, section_id: int) -> int | None:
        """The Front has nothing for this group: the Back (for some), or None (they leave)."""
        if section_id == event["front"] and random.random() < TAKES_BACK:
            TALLY.counts[f"{self.cohort}: front gone, took the back"] += 1
            return event["back"]
        TALLY.counts[f"{self.cohort}: left without seats"] += 1
        return None

    def count_seats(self, event: dict, hold: dict) -> None:
        names = {s["package_id"]: s["name"] for s in event["sections"]}
        for seat in hold["seats"]:
            TALLY.counts[f"seats bought: {names.get(seat['package_id'], '?')}"] += 1


class MapBuyer(SeatBuyer):
    """Chooses seats on the live seat map; a seat taken meanwhile means a fresh map and another
    try."""

    cohort = "map"

    def choose(self, event: dict, quantity: int) -> Answer | None:
        section, taken, tries = event["front"], set(), 0
        while tries < TRIES:
            seat_map = self.call("GET", f"/api/events/{event['id']}/seating", "seat map")
            if not seat_map:
                return None
            runs = best_runs(seat_map.js, section, quantity, taken)
            if not runs:
                section = self.front_gone(event, section)
                if section is None:
                    return None
                continue
            tries += 1
            hold = self.hold(event["id"], {"seat_ids": random.choice(runs[:BEST_RUNS])})
            if hold.status == 201:
                TALLY.counts[f"map: held on try {tries}"] += 1
                return hold
            if hold.status != 409 or hold.code != "seat_unavailable":
                return None  # rate-limited, or a refusal counted under its code
            # a conflict: call() counted it ("hold 409 seat_unavailable"); the refusal names the
            # seats gone, which the page would show taken on the next look
            named = str((hold.js.get("fields") or {}).get("seat_ids", ""))
            taken |= {int(x) for x in named.split(",") if x.strip().isdigit()}
            gevent.sleep(random.uniform(0.3, 1.5))  # a moment to look at the map again
        TALLY.counts[f"map: gave up after {TRIES} conflicts"] += 1
        return None


class BestBuyer(SeatBuyer):
    """Asks for the best seats available in the Front; the server picks and holds at once."""

    cohort = "best"

    def choose(self, event: dict, quantity: int) -> Answer | None:
        section = event["front"]
        while section is not None:
            hold = self.hold(event["id"], {"quantity": quantity, "section_id": section},
                             name="hold: best available", path="best-available")
            if hold.status == 201:
                return hold
            if hold.status != 409 or hold.code != "no_adjacent_run":
                return None
            section = self.front_gone(event, section)
        return None
