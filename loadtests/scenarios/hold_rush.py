"""The hold rush, for the comparison with the PostgreSQL row-lock baseline: buyers arrive as a
spike for 1,000 tickets in three packages (no waiting room: the baseline has none) and each tries
to hold 1-4 tickets until one hold is made, refreshing every 0.5-1.5 s after a sold-out answer,
as people do. Run against Kwika (`hold-rush`) and against loadtests/pg_server.py (`pg-baseline`,
the same Locust file, the same HTTP stack, a row lock instead of Redis).

    .venv/bin/python -m loadtests.run hold-rush --users 1000
    .venv/bin/python -m loadtests.run pg-baseline --users 1000
"""

from __future__ import annotations

import random

import gevent
from locust import constant, task

from loadtests.scenarios.ga_rush import QUANTITIES
from loadtests.scenarios.kit import CONFIG, KwikaUser
from loadtests.scenarios.shapes import Spike  # noqa: F401  (Locust finds the shape here)


class Holder(KwikaUser):
    wait_time = constant(0)

    @task
    def rush(self) -> None:
        event = CONFIG["event"]
        packages = event["packages"]
        while True:
            package = random.choices(packages, [p["weight"] for p in packages])[0]
            hold = self.hold(event["id"], {"items": [{"package_id": package["id"],
                                                       "quantity": random.choice(QUANTITIES)}]})
            if hold.status == 201:
                return self.done()
            gevent.sleep(random.uniform(0.5, 1.5))
