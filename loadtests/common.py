"""Shared pieces of the benchmarks: a private redis-server, latency statistics, report writing."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPORTS = Path(__file__).with_name("reports")


def wait_ready(base: str, within: float = 30) -> None:
    """Until the server at `base` answers /readyz (or `within` seconds have passed)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + "/readyz", timeout=1)
            return
        except OSError:
            time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A redis-server of the benchmark's own (no persistence), so runs do not disturb others."""

    def __init__(self) -> None:
        if not shutil.which("redis-server"):
            raise SystemExit("redis-server is needed: apt-get install redis-server")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="kwika-bench-")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Result:
    name: str
    concurrency: int
    ops: int
    seconds: float
    latencies_ms: list[float]
    errors: int = 0
    note: str = ""

    @property
    def rate(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(q * len(data)))]

    def row(self) -> str:
        p50, p99 = ((f"{self.pct(0.5):.2f}", f"{self.pct(0.99):.2f}") if self.latencies_ms
                    else ("-", "-"))
        return (f"| {self.name} | {self.concurrency} | {self.rate:,.0f} | {p50} | {p99} | "
                f"{self.errors} | {self.note} |")


HEADER = ("| scenario | concurrency | holds/s | p50 ms | p99 ms | errors | note |\n"
          "|---|---|---|---|---|---|---|")


def write_report(name: str, lines: list[str]) -> str:
    """Write `lines` as loadtests/reports/<name> and print it."""
    report = "\n".join(lines) + "\n"
    REPORTS.mkdir(exist_ok=True)
    (REPORTS / name).write_text(report)
    print(report)
    return report


class TempDatabase:
    """A PostgreSQL database of the benchmark's own beside the one at `url`, dropped by `drop`."""

    def __init__(self, url: str, prefix: str = "kwika_bench") -> None:
        import asyncio
        import uuid
        from urllib.parse import urlsplit, urlunsplit

        self.admin_url, self.name = url, f"{prefix}_{uuid.uuid4().hex[:8]}"
        asyncio.run(self._admin(f'CREATE DATABASE "{self.name}"'))
        # the path only: an embedded server's URL carries its socket folder as ?host=/...
        self.dsn = urlunsplit(urlsplit(url)._replace(path="/" + self.name))

    async def _admin(self, sql: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.admin_url)
        await conn.execute(sql)
        await conn.close()

    def drop(self) -> None:
        import asyncio

        asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
