"""Tickets: payloads signed and verified per second, and PDF tickets rendered per second, in one
process and through the process pool (TicketRenderer) that the worker uses.

    .venv/bin/python -m loadtests.bench_tickets [--seconds 5] [--orders 40]

Signing and verifying run in this process, one thread, for `--seconds` each: valid payloads,
then forged ones (a forgery costs a verification, no more). PDF rows render the demo order
(engine/tickets/sample.py) of 1 and of 5 tickets in this process, then `--orders` orders of 5
tickets through pools of 1 and of all CPUs, timed from submit to the last PDF (workers already
started). The machine's load average is written beside every row, since it is shared.
Writes loadtests/reports/tickets.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine.tickets import (
    ForgedTicket,
    Keyring,
    TicketClaims,
    new_ticket_number,
    sign_ticket,
    verify_ticket,
)
from engine.tickets.pdf import render_order_pdf
from engine.tickets.sample import sample_order
from engine.tickets.store import TicketRenderer
from loadtests.common import REPORTS

NOTES = [
    "Reading it: the CPU-second columns are what one process does with a core to itself; the",
    "wall columns are what it got on this shared machine. A pool's wall rate grows with its",
    "workers only while cores are free: with the load average above the core count, a second",
    "worker mostly waits. An order's PDF costs a fixed ~150 ms of CPU (two fonts parsed and",
    "subset, fpdf2's document set-up) plus ~60 ms a ticket (encoding and drawing the QR code",
    "over half of it), so orders of several tickets render faster per ticket. Verifying costs",
    "about one OpenSSL Ed25519 verification; parsing and base32 add ~30%; a forgery costs the",
    "same.",
]


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def timed_loop(seconds: float, step, batch: int = 100) -> tuple[int, float, float]:
    """Calls of `step(i)` made in about `seconds`, the wall time and the CPU time they took (on
    a shared machine the CPU time is the steadier figure)."""
    n, start, cpu = 0, time.perf_counter(), time.process_time()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            step(n)
            n += 1
        now = time.perf_counter()
        if now >= deadline:
            return n, now - start, time.process_time() - cpu


def rates(n: int, wall: float, cpu: float, unit: int = 1) -> str:
    return f"{n * unit / wall:,.1f} | {n * unit / cpu:,.1f}"


def payload_rows(seconds: float) -> list[str]:
    keyring = Keyring.generate("B1")
    claims = [TicketClaims(ticket_number=new_ticket_number(42), event_id=42, seat_id=1000 + i,
                           generation=1) for i in range(1000)]
    payloads = [sign_ticket(keyring, c) for c in claims]
    keys = keyring.public_keys
    forger = Keyring([("B1", Ed25519PrivateKey.generate())])
    forged = [sign_ticket(forger, c) for c in claims]
    rows = []
    before = load()
    n, wall, cpu = timed_loop(seconds, lambda i: sign_ticket(keyring, claims[i % 1000]))
    rows.append(f"| sign_ticket | {rates(n, wall, cpu)} | {cpu / n * 1e6:.0f} µs | {before} |")
    before = load()
    n, wall, cpu = timed_loop(seconds, lambda i: verify_ticket(keys, payloads[i % 1000]))
    rows.append(f"| verify_ticket (genuine) | {rates(n, wall, cpu)} | {cpu / n * 1e6:.0f} µs | "
                f"{before} |")

    def forged_one(i: int) -> None:
        try:
            verify_ticket(keys, forged[i % 1000])
        except ForgedTicket:
            return
        raise AssertionError("a forgery verified")

    before = load()
    n, wall, cpu = timed_loop(seconds, forged_one)
    rows.append(f"| verify_ticket (forged: ForgedTicket) | {rates(n, wall, cpu)} | "
                f"{cpu / n * 1e6:.0f} µs | {before} |")
    raw_key, message = keyring.current()[1].public_key(), b"KW1.B1.42.ABCD..1"
    signature = keyring.current()[1].sign(message)
    before = load()
    n, wall, cpu = timed_loop(seconds, lambda i: raw_key.verify(signature, message))
    rows.append(f"| OpenSSL Ed25519 verify alone (cryptography) | {rates(n, wall, cpu)} | "
                f"{cpu / n * 1e6:.0f} µs | {before} |")
    return rows


def in_process_rows(seconds: float) -> list[str]:
    keyring = Keyring.generate("B1")
    rows = []
    render_order_pdf(sample_order(keyring, 1))  # imports and first-use costs out of the way
    for tickets in (1, 5):
        order = sample_order(keyring, tickets)
        size = len(render_order_pdf(order))
        before = load()
        n, wall, cpu = timed_loop(seconds, lambda i, o=order: render_order_pdf(o), batch=1)
        rows.append(f"| this process, orders of {tickets} | 1 | {rates(n, wall, cpu, tickets)} | "
                    f"{cpu / n * 1000:.0f} ms CPU an order | {size / tickets / 1024:.0f} KiB | "
                    f"{before} |")
    return rows


async def pool_rows(orders: int) -> list[str]:
    keyring = Keyring.generate("B1")
    batch = [sample_order(keyring, 5, order_number=f"ORD-BENCH-{i}") for i in range(orders)]
    rows = []
    for workers in sorted({1, len(os.sched_getaffinity(0))}):
        async with TicketRenderer(workers) as renderer:
            await asyncio.gather(*(renderer.render(o) for o in batch[:workers]))  # warm
            before = load()
            start = time.perf_counter()
            pdfs = await asyncio.gather(*(renderer.render(o) for o in batch))
            took = time.perf_counter() - start
        pages = 5 * len(pdfs)
        rows.append(f"| TicketRenderer pool, {orders} orders of 5 | {workers} | "
                    f"{pages / took:,.1f} | - | {took / len(pdfs) * 1000:.0f} ms an order (wall) | "
                    f"{sum(map(len, pdfs)) / pages / 1024:.0f} KiB | {before} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--orders", type=int, default=40)
    args = parser.parse_args()
    started = datetime.now(UTC)
    start_load = load()
    payload = payload_rows(args.seconds)
    pdf = in_process_rows(args.seconds)
    pdf += asyncio.run(pool_rows(args.orders))
    report = "\n".join([
        "# Tickets benchmark",
        "",
        (f"Run {started:%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores ({platform.python_version()}"
        f", {platform.machine()}), a machine shared with other work: load average "
        f"{start_load} (1, 5, 15 min) at the start, {load()} at the end."),
        (f"Command: `.venv/bin/python -m loadtests.bench_tickets --seconds {args.seconds:g} "
        f"--orders {args.orders}`"),
        "",
        "## Signed payloads (format KW1, Ed25519), one thread",
        "",
        "| operation | per second (wall) | per CPU second | CPU each | load before |",
        "|---|---|---|---|---|",
        *payload,
        "",
        "## PDF tickets (one A4 page per ticket, QR level Q)",
        "",
        ("| renderer | processes | tickets/s (wall) | tickets per CPU second | time | "
        "size a ticket | load before |"),
        "|---|---|---|---|---|---|---|",
        *pdf,
        "",
        *NOTES,
    ])
    REPORTS.mkdir(exist_ok=True)
    (REPORTS / "tickets.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
