"""Load shapes: a rush arrives as a spike, not a ramp."""

from __future__ import annotations

from locust import LoadTestShape

from loadtests.scenarios.kit import CONFIG


class Spike(LoadTestShape):
    """`users` arrive within `spawn_seconds`, stay for the run's `seconds`, then it stops."""

    def tick(self):
        if self.get_run_time() >= CONFIG.get("seconds", 60):
            return None
        users = CONFIG.get("users", 100)
        return users, users / max(CONFIG.get("spawn_seconds", 5), 0.1)
