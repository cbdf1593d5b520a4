"""The load scenarios: each is a Locust file (its users and load shape) and a setup that makes
what it needs through the provider API of a running Kwika. `python -m loadtests.run NAME` runs
one (loadtests/run.py).

| name | what happens |
|---|---|
| `ga-rush` | buyers arrive as a spike for 1,000 tickets in three packages behind the waiting room: queue (proof of work), hold, checkout, sandbox card payment (webhook), paid, emailed |
| `seat-rush` | buyers race for the best 200 seats of a seated event from the live seat map or best available, retrying on conflict, then pay |
| `gate-rush` | 200 scanners check in 10,000 issued tickets, 5% of scans repeats and 1% forgeries |
| `mixed-day` | the GA rush while others browse, search, read My tickets and watch the queue page |
| `bots` | the GA rush with 10% of its clients a scripted cohort: many identities, no pages, no pauses |
| `hold-rush` | the hold step alone under a spike, no room: the figure to compare with the baseline |
| `pg-baseline` | the same hold rush against a plain PostgreSQL row lock behind the same HTTP stack (loadtests/pg_server.py) |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loadtests.scenarios import setup

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Scenario:
    name: str
    locustfile: Path
    setup: Callable  # (stack, plan) -> the config the Locust users read
    users: int  # full run
    seconds: float
    spawn_seconds: float
    short_users: int  # the CI run
    short_seconds: float
    title: str
    env: tuple[tuple[str, str], ...] = ()  # settings of `kwika up` for this scenario

    def plan(self, args) -> dict:
        short = args.short
        users = args.users or (self.short_users if short else self.users)
        seconds = args.seconds or (self.short_seconds if short else self.seconds)
        spawn = args.spawn_seconds or min(self.spawn_seconds, seconds / 3)
        return {"scenario": self.name, "users": users, "seconds": seconds,
                "spawn_seconds": spawn, "short": short, "workers": args.workers,
                "processes": args.processes}


SCENARIOS = {s.name: s for s in (
    Scenario("ga-rush", HERE / "ga_rush.py", setup.ga_rush, 1000, 120, 10, 300, 30,
             "General-admission rush behind the waiting room"),
    Scenario("bots", HERE / "bots.py", setup.bots, 1000, 120, 10, 300, 30,
             "Bots in the general-admission rush"),
    Scenario("mixed-day", HERE / "mixed_day.py", setup.mixed_day, 1000, 120, 10, 300, 30,
             "A mixed day: the rush, browsing, search, My tickets, the queue page"),
    Scenario("hold-rush", HERE / "hold_rush.py", setup.hold_rush, 1000, 60, 10, 300, 30,
             "Hold rush (Kwika), for the row-lock comparison"),
    Scenario("pg-baseline", HERE / "hold_rush.py", setup.pg_baseline, 1000, 60, 10, 300, 30,
             "Hold rush against the PostgreSQL row-lock baseline"),
    Scenario("seat-rush", HERE / "seat_rush.py", setup.seat_rush, 1000, 90, 10, 200, 30,
             "Seat rush for the best 200 seats"),
    # no email: the setup issues 10,000 tickets whose PDFs would take the cores for minutes
    # (setup.gate_rush says why)
    Scenario("gate-rush", HERE / "gate_rush.py", setup.gate_rush, 200, 90, 10, 50, 30,
             "Gate rush: 200 scanners, 10,000 tickets", env=(("KWIKA_MAIL", "false"),)),
)}
