"""Scenario 4, a mixed day: the general-admission rush while other visitors browse the catalog,
search, open event pages, read their tickets and watch the queue page.

    .venv/bin/python -m loadtests.run mixed-day --users 1000

Half the users are rush buyers (scenario 1); the rest split among browsers and searchers,
account holders reading My tickets (signed in once, with accounts made at set-up), and visitors
who keep the queue page open (the HTML page, then its status as the page polls it).
"""

from __future__ import annotations

import random

from locust import between, task

from loadtests.scenarios.ga_rush import RushBuyer
from loadtests.scenarios.kit import CONFIG, KwikaUser
from loadtests.scenarios.shapes import Spike  # noqa: F401  (Locust finds the shape here)

WORDS = ("lake", "festival", "night", "jazz", "rush", "stars", "")


class Buyer(RushBuyer):
    weight = 5


class Browser(KwikaUser):
    weight = 3
    wait_time = between(1, 4)

    @task(3)
    def listing(self) -> None:
        self.page("/events", "page: events")
        self.call("GET", f"/api/events?per_page=20&page={random.randint(1, 3)}", "api: events")

    @task(3)
    def search(self) -> None:
        self.call("GET", f"/api/events?q={random.choice(WORDS)}", "api: search")

    @task(2)
    def event_page(self) -> None:
        self.page(f"/events/{CONFIG['event']['slug']}", "page: event")

    @task(1)
    def home(self) -> None:
        self.page("/", "page: home")

    def page(self, path: str, name: str) -> None:
        with self.client.get(path, name=name, catch_response=True,
                             headers=self.headers({"Accept": "text/html"})) as resp:
            if resp.status_code != 200 or "<html" not in (resp.text or "")[:500].lower():
                resp.failure(f"{resp.status_code}: not a page")


class TicketHolder(KwikaUser):
    """Signs in once (an account made at set-up), then reads My tickets now and then."""

    weight = 1
    wait_time = between(2, 6)

    def on_start(self) -> None:
        super().on_start()
        account = random.choice(CONFIG["accounts"])
        self.call("POST", "/api/auth/login", "api: login", json_body=account)

    @task
    def my_tickets(self) -> None:
        with self.client.get("/my/tickets", name="page: my tickets", catch_response=True,
                             headers=self.headers({"Accept": "text/html"})) as resp:
            if resp.status_code != 200:
                resp.failure(f"{resp.status_code}")


class QueueWatcher(KwikaUser):
    """Opens the queue page and stays on it: the page polls the room's status."""

    weight = 1
    wait_time = between(2, 5)

    @task
    def watch(self) -> None:
        event = CONFIG["event"]
        with self.client.get(f"/events/{event['slug']}/queue", name="page: queue",
                             catch_response=True, allow_redirects=False,
                             headers=self.headers({"Accept": "text/html"})) as resp:
            if resp.status_code not in (200, 303):
                resp.failure(f"{resp.status_code}")
        self.call("GET", f"/api/events/{event['id']}/room", "room: status (watcher)")
