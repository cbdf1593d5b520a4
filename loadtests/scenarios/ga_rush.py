"""Scenario 1, the general-admission rush: buyers arrive as a spike for an event whose tickets
sell through its waiting room. Each joins the room (solving the proof of work), waits its turn,
holds one to four tickets of a package, checks out, pays by card on the sandbox gateway's hosted
page (the sandbox's signed webhook confirms the sale) and waits for the order to show paid; the
worker then issues the tickets and emails them. A sold-out answer ends a buyer's journey: that is
the product working.

    .venv/bin/python -m loadtests.run ga-rush --users 1000
"""

from __future__ import annotations

import random

from locust import constant, task

from loadtests.scenarios.kit import CONFIG, KwikaUser
from loadtests.scenarios.shapes import Spike  # noqa: F401  (Locust finds the shape here)

QUANTITIES = (1, 1, 2, 2, 2, 3, 4)


class RushBuyer(KwikaUser):
    """A person: opens the event page, queues, buys once, and is done."""

    wait_time = constant(0)
    email = "buyer@load.test"

    @task
    def journey(self) -> None:
        self.rush(CONFIG["event"])
        self.done()

    def rush(self, event: dict) -> None:
        page = self.call("GET", f"/api/events/{event['slug']}", "event page")
        if not page:
            return
        if CONFIG.get("room") and not self.wait_turn(event["id"]):
            return
        packages = list(event["packages"])
        for _ in range(3):  # their first choice, then whatever still shows stock
            if not packages:
                return
            package = random.choices(packages, [p["weight"] for p in packages])[0]
            quantity = random.choice(QUANTITIES)
            hold = self.hold(event["id"], {"items": [{"package_id": package["id"],
                                                       "quantity": quantity}]})
            if hold.status == 201:
                self.buy(hold.js, self.email)
                return
            if hold.status == 429:
                return
            fresh = self.call("GET", f"/api/events/{event['slug']}", "event page")
            left = {p["id"] for p in fresh.js.get("packages", []) if p.get("available", 0) > 0}
            packages = [p for p in packages if p["id"] in left]
