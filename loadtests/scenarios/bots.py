"""Scenario 5, bots: the general-admission rush with a tenth of its clients a scripted cohort.

A bot is one program on one machine (one client address) with as many identities as the site
will give it: it opens no pages and never waits. It fires holds without a pass (skipping the
queue), makes identity after identity (a fresh cookie jar each: challenge, proof of work, join)
as fast as the room accepts them, polls every identity's place, and whenever one is admitted it
holds and pays. It buys the quantities people buy (1-4, mostly 2): what is measured is what being
a program gives (identities, speed, skipping pages), not the per-order maximum, which any person
may also buy and the event's per-buyer limit caps. The report sets the tickets the cohort won against its share of
the clients, and the rank correlation of arrival and admission in the pre-queue.

    .venv/bin/python -m loadtests.run bots --users 1000

What the room does not see here: a botnet, many addresses each with one identity, looks like that
many people (README, "Waiting room"); its defence is the per-buyer limits and the cost of each
identity's proof of work.
"""

from __future__ import annotations

import random
import time

from locust import constant, task

from engine.room.tokens import solve
from loadtests.scenarios.ga_rush import QUANTITIES, RushBuyer
from loadtests.scenarios.kit import CONFIG, TALLY, KwikaUser
from loadtests.scenarios.shapes import Spike  # noqa: F401  (Locust finds the shape here)


class Person(RushBuyer):
    weight = 9


class Bot(KwikaUser):
    weight = 1
    cohort = "bots"
    wait_time = constant(0)

    def on_start(self) -> None:
        super().on_start()
        self.identities: list[list] = []  # each: the cookies of one identity
        self.bought = False

    def as_identity(self, cookies: list) -> None:
        jar = self.client.cookiejar
        jar.clear()
        for cookie in cookies:
            jar.set_cookie(cookie)

    @task
    def fire(self) -> None:
        event = CONFIG["event"]
        eid = event["id"]
        package = max(event["packages"], key=lambda p: p["weight"])
        started = time.monotonic()
        while time.monotonic() - started < CONFIG["seconds"]:
            # skip the queue: a hold without a pass
            self.as_identity([])
            self.call("POST", f"/api/events/{eid}/holds", "bot: hold without a pass",
                      json_body={"items": [{"package_id": package["id"], "quantity": 4}]},
                      ok=(), expected=(403, 409, 429))
            # one more identity, if the room lets this address have one
            c = self.call("GET", f"/api/events/{eid}/room/challenge", "bot: challenge",
                          expected=(409, 429))
            if c:
                j = self.call("POST", f"/api/events/{eid}/room/join", "bot: join",
                              expected=(409, 429), json_body={
                                  "challenge": c.js["challenge"],
                                  "solution": solve(c.js["challenge"], c.js["difficulty"])})
                if j:
                    self.identities.append(list(self.client.cookiejar))
                    TALLY.counts["bot identities in the room"] += 1
            # every identity's place; an admitted one buys
            for cookies in list(self.identities):
                self.as_identity(cookies)
                s = self.call("GET", f"/api/events/{eid}/room", "bot: status")
                state = s.js.get("state")
                if state == "sold_out":
                    return self.done()
                if s.js.get("place") == "admitted":
                    hold = self.hold(eid, {"items": [{"package_id": package["id"],
                                                      "quantity": random.choice(QUANTITIES)}]},
                                     name="bot: hold")
                    if hold.status == 201:
                        self.buy(hold.js, "bot@load.test")
                    self.identities.remove(cookies)
                elif s.js.get("place") in ("used", "none"):
                    self.identities.remove(cookies)
        self.done()
