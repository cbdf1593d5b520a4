"""The buyer's journey under load: browse, open an event, check availability, hold, sometimes
give the hold back. A sold-out or refused hold (409) is the system working; a 5xx, a timeout or a
malformed answer is a failure. The run exits non-zero when more than 1% fail or p95 > 500 ms.

    ./dev up                                    # in another shell (demo data)
    .venv/bin/pip install -e '.[load]'
    .venv/bin/locust -f loadtests/locustfile.py --headless -u 200 -r 50 -t 30s \\
        --host http://127.0.0.1:8080
    .venv/bin/kwika audit                       # the books balance afterwards

KWIKA_EVENT_SLUG picks the event (default: the first general-admission event listed).
"""

from __future__ import annotations

import os
import random

from locust import FastHttpUser, between, events, task

P95_BOUND_MS = 500
FAIL_RATIO_BOUND = 0.01


class Buyer(FastHttpUser):
    wait_time = between(0.5, 2)

    def on_start(self) -> None:
        self.event = None
        with self.rest("GET", "/api/events?per_page=50", name="/api/events") as resp:
            if resp.js is None or "items" not in resp.js:
                resp.failure("listing without items")
                return
            wanted = os.environ.get("KWIKA_EVENT_SLUG")
            for item in resp.js["items"]:
                if (wanted and item["slug"] == wanted) or (not wanted and not item["requires_seating"]):
                    self.event = item
                    break
        if self.event is None:
            raise RuntimeError("no general-admission event on sale; start `./dev up` (demo data)")

    @task(3)
    def browse(self) -> None:
        with self.rest("GET", f"/api/events?q={random.choice(['lake', 'night', 'music', ''])}",
                       name="/api/events?q=") as resp:
            if resp.js is not None and "total" not in resp.js:
                resp.failure("search answer without total")

    @task(2)
    def hold(self) -> None:
        with self.rest("GET", f"/api/events/{self.event['slug']}", name="/api/events/[slug]") as resp:
            packages = [p for p in (resp.js or {}).get("packages", []) if p["sale_state"] == "on_sale"]
        if not packages:
            return
        pkg = random.choice(packages)
        body = {"items": [{"package_id": pkg["id"], "quantity": 1}]}
        with self.rest("POST", f"/api/events/{self.event['id']}/check-availability", json=body,
                       name="/api/events/[id]/check-availability") as resp:
            if resp.js is not None and "ok" not in resp.js:
                resp.failure("availability answer without ok")
        with self.rest("POST", f"/api/events/{self.event['id']}/holds", json=body,
                       name="/api/events/[id]/holds") as resp:
            if resp.status_code == 409:
                resp.success()  # sold out or over the limit: an answer, not an error
                return
            if resp.status_code != 201 or not (resp.js or {}).get("id"):
                resp.failure(f"hold answered {resp.status_code}")
                return
            hold_id = resp.js["id"]
        if random.random() < 0.3:  # some buyers change their mind
            with self.rest("DELETE", f"/api/holds/{hold_id}", name="/api/holds/[id]") as resp:
                if resp.status_code == 204:
                    resp.success()


@events.quitting.add_listener
def _judge(environment, **_kw) -> None:
    total = environment.stats.total
    too_slow = total.get_response_time_percentile(0.95) > P95_BOUND_MS
    environment.process_exit_code = 1 if total.fail_ratio > FAIL_RATIO_BOUND or too_slow else 0
