"""What every scenario's Locust users share: the run's settings, a client address of each user's
own, JSON calls that judge their answers, and the buyer's steps (queue, hold, checkout, pay).

A user is one browser: its own cookies (FastHttpUser keeps a cookie jar per user) and its own
client address, sent as `X-Forwarded-For` to a server that trusts the load generator as a proxy
(`KWIKA_TRUSTED_PROXIES`), so per-address limits see many addresses as they would in a real rush.
Answers the product gives on purpose (sold out, over the limit, a seat taken) are successes of the
request, counted under their own names; a 5xx, a timeout or an answer of the wrong shape is a
failure. Each process writes what its users saw (purchases, bots' wins, queue ranks) to
`$KWIKA_LOAD_OUT/<pid>.json` when it stops; the runner adds them up.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections import Counter
from pathlib import Path

import gevent
from locust import FastHttpUser, events

from engine.room.tokens import solve

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CONFIG: dict = json.loads(Path(os.environ["KWIKA_LOAD_CONFIG"]).read_text()) \
    if os.environ.get("KWIKA_LOAD_CONFIG") else {}
PAID_WITHIN_S = 60.0


class Tally:
    """What this process's users saw, beyond Locust's request statistics."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.tickets: Counter = Counter()  # cohort -> tickets bought
        self.clients: Counter = Counter()  # cohort -> clients started
        self.ranks: list[tuple[float, float]] = []  # pre-queue joiners: (joined, admitted) times
        self.purchase_ms: list[float] = []  # pay pressed -> order seen paid

    def dump(self) -> None:
        out = os.environ.get("KWIKA_LOAD_OUT")
        if not out:
            return
        Path(out).mkdir(parents=True, exist_ok=True)
        # written aside, then renamed: the runner may be reading the folder meanwhile
        part = Path(out) / f"{os.getpid()}.json.part"
        part.write_text(json.dumps({
            "counts": self.counts, "tickets": self.tickets, "clients": self.clients,
            "ranks": self.ranks, "purchase_ms": self.purchase_ms}))
        part.replace(Path(out) / f"{os.getpid()}.json")


TALLY = Tally()


@events.test_stop.add_listener
def _dump_on_stop(**_kw) -> None:
    TALLY.dump()


@events.quitting.add_listener
def _dump_on_quit(**_kw) -> None:
    TALLY.dump()


def new_address() -> str:
    """A client address from 10.0.0.0/8 (one per simulated device)."""
    n = random.getrandbits(24)
    return f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}"


def error_code(js) -> str | None:
    """The code of an error answer: `{"error": "sold_out", "message": …, "fields": {…}}`
    (storefront/errors.py)."""
    error = js.get("error") if isinstance(js, dict) else None
    return error if isinstance(error, str) else None


class Answer:
    """A JSON answer: its status and decoded body (None when it was not JSON)."""

    def __init__(self, status: int, js) -> None:
        self.status, self.js = status, js if js is not None else {}

    def __bool__(self) -> bool:
        return 200 <= self.status < 300

    @property
    def code(self) -> str | None:
        """The error's code (`seat_unavailable`, `sold_out`, …); None on success."""
        return None if self else error_code(self.js)


class KwikaUser(FastHttpUser):
    """A browser of its own: cookies, a client address, JSON calls judged as they come back."""

    abstract = True
    cohort = "people"
    network_timeout = 30.0
    connection_timeout = 30.0

    def on_start(self) -> None:
        self.address = new_address()
        TALLY.clients[self.cohort] += 1

    def headers(self, extra: dict | None = None) -> dict:
        return {"X-Forwarded-For": self.address, "Accept": "application/json", **(extra or {})}

    def call(self, method: str, path: str, name: str, *, json_body=None, ok=(200, 201, 204),
             expected=(), headers: dict | None = None) -> Answer:
        """One request. Statuses in `ok` and `expected` are successes (an `expected` one, such as
        409 sold out, is also counted by its error code); anything else fails the request."""
        with self.client.request(method, path, name=name, json=json_body, catch_response=True,
                                 headers=self.headers(headers)) as resp:
            try:
                js = resp.json() if resp.text else None
            except ValueError:
                js = None
            status = resp.status_code or 0
            if status in ok:
                resp.success()
            elif status in expected:
                resp.success()
                code = error_code(js)
                TALLY.counts[f"{name} {status} {code or ''}".strip()] += 1
            else:
                resp.failure(f"{status}: {(resp.text or '')[:200]}")
            return Answer(status, js if isinstance(js, dict) else None)

    # -- the buyer's steps -------------------------------------------------------------------

    def wait_turn(self, event_id: int, *, deadline_s: float = 600.0) -> bool:
        """Join the event's waiting room (solving its proof of work) and wait, as the queue page
        does, until it is this user's turn. False when the room says there is nothing left."""
        c = self.call("GET", f"/api/events/{event_id}/room/challenge", "room: challenge",
                      expected=(409, 429))
        if not c:
            return False
        solution = solve(c.js["challenge"], c.js["difficulty"])
        joined_at = time.time()
        j = self.call("POST", f"/api/events/{event_id}/room/join", "room: join", expected=(409, 429),
                      json_body={"challenge": c.js["challenge"], "solution": solution})
        if not j:
            return False
        prequeue = j.js.get("place") == "prequeue"
        stop_at = time.monotonic() + deadline_s
        status = j.js
        while time.monotonic() < stop_at:
            if status.get("place") in ("admitted", "used"):
                if prequeue:
                    TALLY.ranks.append((joined_at, time.time()))
                TALLY.counts["admitted"] += 1
                return True
            if status.get("state") in ("sold_out", "off"):
                TALLY.counts[f"room said {status.get('state')}"] += 1
                return status.get("state") == "off"
            gevent.sleep(min(float(status.get("poll_seconds") or 2), CONFIG.get("max_poll_s", 5)))
            s = self.call("GET", f"/api/events/{event_id}/room", "room: status")
            if not s:
                return False
            status = s.js
        TALLY.counts["still queued at the deadline"] += 1
        return False

    def hold(self, event_id: int, body: dict, name: str = "hold",
             path: str = "holds") -> Answer:
        return self.call("POST", f"/api/events/{event_id}/{path}", name, json_body=body,
                         expected=(409, 429))

    def buy(self, hold: dict, cohort_email: str) -> bool:
        """Checkout, a card payment on the sandbox's hosted page, then the order seen paid."""
        out = self.call("POST", f"/api/holds/{hold['id']}/checkout", "checkout", json_body={
            "billing": {"name": "Load Buyer", "email": cohort_email, "phone": "+265991234567"},
            "accept_terms": True, "use_buyer_details": True}, expected=(409,))
        number = out.js.get("order_number")
        if not number:
            return False
        pressed = time.monotonic()
        pay = self.call("POST", f"/api/orders/{number}/payments", "pay",
                        json_body={"method": "card", "gateway": "sandbox"})
        url = (pay.js.get("next_action") or {}).get("url")
        if not url:
            return False
        with self.client.get(url, name="sandbox: hosted page", headers=self.headers(
                {"Accept": "text/html"}), catch_response=True) as page:
            token = CSRF.search(page.text or "")
            if not token:
                page.failure("hosted page without a form")
                return False
        self.client.post(f"{url}/card", name="sandbox: card", allow_redirects=False,
                         headers=self.headers({"Accept": "text/html"}), data={
                             "csrf_token": token.group(1), "card_number": "4242 4242 4242 4242",
                             "expiry": "12/34", "cvc": "123"})
        while time.monotonic() - pressed < PAID_WITHIN_S:  # as the payment status page polls
            order = self.call("GET", f"/api/orders/{number}", "order status")
            if order.js.get("status") == "paid":
                TALLY.purchase_ms.append((time.monotonic() - pressed) * 1000)
                # a hold's items are its general-admission lines only; its seats are listed
                # apart (includes/holding.lua), so a seated hold has items [] and no seat counts twice
                TALLY.tickets[self.cohort] += sum(i["quantity"] for i in hold["items"]) \
                    + len(hold.get("seats") or [])
                TALLY.counts["purchases"] += 1
                return True
            gevent.sleep(0.5)
        self.environment.events.request.fire(
            request_type="PAY", name="paid within 60 s", response_time=PAID_WITHIN_S * 1000,
            response_length=0, exception=RuntimeError(f"order {number} not paid"), context={})
        return False

    def done(self) -> None:
        """This user's journey is over: it stays connected and idle until the run ends."""
        while True:
            gevent.sleep(3600)
