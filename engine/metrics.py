"""Counters of what the engine and its callers do, for `/metrics` (Prometheus text format).

Each metric is process-wide, like a logger: an increment is a few hundred nanoseconds and touches
no I/O, so the hold path may count freely. Under `kwika serve --workers N` the CLI sets
PROMETHEUS_MULTIPROC_DIR before anything imports prometheus_client; every process then writes its
values to files there and `exposition()` sums them. Without it (tests, one process) the values
live in this process and `exposition()` reads them directly. Counters only ever go up: tests
compare before and after.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# request latency buckets, seconds: a hold answers in milliseconds, a page in tens of them
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUEST_SECONDS = Histogram(
    "kwika_http_request_duration_seconds", "Time to answer a request, by route template",
    ("route", "method", "status"), buckets=LATENCY_BUCKETS, registry=None)
HOLDS = Counter("kwika_holds_total", "Hold attempts: made, or refused with the reason",
                ("outcome", "reason"), registry=None)
PURCHASES = Counter("kwika_purchases_confirmed_total",
                    "Payments that turned a hold into a sale", registry=None)
PAYMENTS = Counter("kwika_payments_total", "Payment state changes recorded, by the new state",
                   ("state",), registry=None)
SCANS = Counter("kwika_scans_total", "Gate scans, by result", ("result",), registry=None)
ROOM_ADMITTED = Counter("kwika_room_admitted_total",
                        "Visitors admitted from waiting rooms by this deployment's ticks",
                        registry=None)

_ALL = (REQUEST_SECONDS, HOLDS, PURCHASES, PAYMENTS, SCANS, ROOM_ADMITTED)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def exposition() -> bytes:
    """The counters of every process of this deployment (or of this process alone), as text."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
    else:
        for metric in _ALL:
            registry.register(metric)
    return generate_latest(registry)
