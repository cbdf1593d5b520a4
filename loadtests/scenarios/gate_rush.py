"""Scenario 3, the gate rush: scanners at the doors of an event check its issued tickets in
(`POST /api/scan` with the gate's Bearer token, as a scanning device sends it).

Each fresh ticket is scanned first by exactly one scanner: the codes (setup.gate_rush, shuffled)
are split among the Locust processes by the process's worker index (code i goes to process
i mod N), and a process's scanners take its codes in turn from one counter they share. A scanner
whose process has no fresh code left is done. Among its scans, about 5% are a repeat of a ticket
it let in before (the same gate within the desk's 30 s repeat window answers `repeat`, later
`used`: both right) and about 1% a forgery: a real code with one character of its signature
changed, well formed still, so the signature check is what refuses it (`forged`). Any other
answer to a kind of scan (or an `ok` flag that disagrees with the result) fails the request.

Paced, not flat out: a scanner is a person at a door (show the code, scan, read the answer, next
one), so each waits 0.5-1.5 × the plan's pause between scans, the pause set so that every share
is scanned a while before the load stops (loadtests/bench_scan.py is the flat-out figure). The
test is of correctness under a realistic rush: every ticket in once, every answer right.

    .venv/bin/python -m loadtests.run gate-rush [--users 200] [--short]
"""

from __future__ import annotations

import itertools
import random

from locust import task
from locust.runners import LocalRunner

from loadtests.scenarios.kit import CONFIG, TALLY, KwikaUser
from loadtests.scenarios.shapes import Spike  # noqa: F401  (Locust finds the shape here)

BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
EXPECT = {"fresh": ("admitted",), "repeat": ("repeat", "used"), "forged": ("forged",)}
LET_IN = ("admitted", "repeat")  # the answers whose `ok` is true

_codes: list[str] | None = None  # this process's share of the codes
_next = itertools.count()  # the next fresh code of the share, for every scanner of the process
_scanners = itertools.count()


def share(runner) -> list[str]:
    """This process's codes: every N-th, from its worker index (N: the Locust processes)."""
    global _codes
    if _codes is None:
        processes = 1 if isinstance(runner, LocalRunner) else int(CONFIG["processes"])
        index = runner.worker_index
        if not 0 <= index < processes:
            raise RuntimeError(f"worker index {index} outside 0..{processes - 1}: the codes "
                               "would not be split once each")
        _codes = CONFIG["codes"][index::processes]
        TALLY.counts["codes in this share"] += len(_codes)
    return _codes


def forge(code: str) -> str:
    """`code` with one character of its signature changed: still well formed (the last
    character's unused bits must stay zero, so it is left alone), but no longer signed."""
    head, _, signature = code.rpartition(".")
    i = random.randrange(len(signature) - 1)
    other = random.choice(BASE32.replace(signature[i], ""))
    return f"{head}.{signature[:i]}{other}{signature[i + 1:]}"


class Scanner(KwikaUser):
    """A person with a scanner at one gate, scanning until its process's share is used up."""

    cohort = "scanners"

    def wait_time(self) -> float:
        return CONFIG["pause_s"] * random.uniform(0.5, 1.5)

    def on_start(self) -> None:
        super().on_start()
        self.codes = share(self.environment.runner)
        gates = CONFIG["gates"]
        n = next(_scanners) * int(CONFIG["processes"]) + self.environment.runner.worker_index
        self.gate = gates[n % len(gates)]
        self.auth = {"Authorization": f"Bearer {CONFIG['token']}"}
        self.let_in: list[str] = []  # codes this scanner admitted

    @task
    def scan_next(self) -> None:
        roll = random.random()
        if roll < CONFIG["forged"]:
            self.scan("forged", forge(random.choice(self.codes)))
        elif roll < CONFIG["forged"] + CONFIG["repeats"] and self.let_in:
            self.scan("repeat", random.choice(self.let_in))
        else:
            i = next(_next)
            if i >= len(self.codes):
                TALLY.counts["scanners done"] += 1
                self.done()
                return
            TALLY.counts["fresh tickets scanned"] += 1
            if self.scan("fresh", self.codes[i]) == "admitted":
                self.let_in.append(self.codes[i])

    def scan(self, kind: str, code: str) -> str | None:
        """One scan; the request fails unless the answer is one `kind` expects."""
        body = {"event_id": CONFIG["event"]["id"], "code": code, "gate": self.gate}
        with self.client.request("POST", "/api/scan", name=f"scan: {kind}", json=body,
                                 headers=self.headers(self.auth), catch_response=True) as resp:
            try:
                js = resp.json() if resp.text else None
            except ValueError:
                js = None
            result = js.get("result") if isinstance(js, dict) else None
            TALLY.counts[f"{kind} scan: {result or resp.status_code}"] += 1
            if resp.status_code != 200 or result is None:
                resp.failure(f"{resp.status_code}: {(resp.text or '')[:200]}")
            elif result not in EXPECT[kind]:
                resp.failure(f"a {kind} scan answered {result!r} (expected "
                             f"{' or '.join(EXPECT[kind])}): {js.get('words')}")
            elif js.get("ok") is not (result in LET_IN):
                resp.failure(f"{result!r} with ok={js.get('ok')!r}")
            else:
                resp.success()
            return result
