"""Run one load scenario end to end and write its report:

    .venv/bin/python -m loadtests.run SCENARIO [--users N] [--seconds S] [--spawn-seconds S]
                                               [--processes N] [--workers N] [--short]

SCENARIO is one of `ga-rush`, `seat-rush`, `gate-rush`, `mixed-day`, `bots`, `pg-baseline`
(loadtests/scenarios/). The runner:

1. starts `kwika up --workers N` (two server processes by default; the first also runs the
   fulfillment and email workers, emailing its own development mailbox over SMTP) on a database
   and a Redis key prefix of the run's own, on the configured `DATABASE_URL` / `REDIS_URL` or,
   with none configured, on embedded servers started for the run. The server trusts the load
   generator as a proxy, so each simulated user has a client address of its own;
2. sets the scenario up through the provider API (events, packages, seats, room, tickets);
3. runs Locust headless in its distributed mode, one master and one worker per core
   (`--processes`), with the scenario's load shape;
4. waits for the worker to drain (every succeeded payment ticketed and emailed, every check-in
   written), then runs the verifier (loadtests/verify.py, `kwika audit` included);
5. writes `loadtests/reports/<scenario>-<users>.md` (client-side figures from Locust, server-side
   ones read from `/metrics` before and after, Postgres timings, the verifier's result, the
   scenario's own figures) and a chart of throughput and latency over the run (`.svg`).

Exit status: 0 when the verifier passed and no request failed, 1 otherwise. `--short` is the CI
version (a few hundred users, about 30 seconds); its report goes to a temporary folder unless
`--report-dir` says otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from engine.embedded import ensure_services
from loadtests.common import REPORTS, TempDatabase, free_port, wait_ready

HERE = Path(__file__).parent
ROOT = HERE.parent


@dataclass
class Stack:
    """A `kwika up` of the run's own: its address, stores and the secrets the setup needs."""

    base: str
    database_url: str
    redis_url: str
    prefix: str
    metrics_token: str
    signing_keys: str
    workers: int
    proc: subprocess.Popen | None = None
    cleanup: list = field(default_factory=list)


def _venv_bin(name: str) -> str:
    local = Path(sys.executable).with_name(name)
    return str(local) if local.exists() else name


def start_stack(workers: int, keep_data: bool = False, env: dict | None = None) -> Stack:
    """`kwika up` on a fresh database and Redis prefix (embedded servers when none configured);
    `env`, settings of the scenario's own (e.g. KWIKA_MAIL=false)."""
    from engine.tickets.keyring import Keyring

    data = Path(tempfile.mkdtemp(prefix="kwika-load-"))
    services = ensure_services(data / "servers", os.environ.get("REDIS_URL") or None,
                               os.environ.get("DATABASE_URL") or None)
    database = TempDatabase(services.database_url, prefix="kwika_load")
    database_url, db_name = database.dsn, database.name
    port = free_port()
    stack = Stack(base=f"http://127.0.0.1:{port}", database_url=database_url,
                  redis_url=services.redis_url, prefix=f"kwl{secrets.token_hex(3)}",
                  metrics_token=secrets.token_urlsafe(24),
                  signing_keys=Keyring.generate("LOAD").to_text(), workers=workers)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url,
           "REDIS_URL": services.redis_url, "KWIKA_REDIS_PREFIX": stack.prefix,
           "KWIKA_DATA_DIR": str(data / "kwika"), "KWIKA_TRUSTED_PROXIES": "127.0.0.1",
           "KWIKA_METRICS_TOKEN": stack.metrics_token, "KWIKA_SECRET_KEY": secrets.token_urlsafe(32),
           "KWIKA_TICKET_SIGNING_KEYS": stack.signing_keys, "KWIKA_LOG_LEVEL": "WARNING",
           "KWIKA_SANDBOX": "true", **(env or {})}
    log = open(data / "kwika.log", "wb")  # noqa: SIM115  (closed with the stack)
    stack.proc = subprocess.Popen(
        [_venv_bin("kwika"), "up", "--port", str(port), "--workers", str(workers)],
        cwd=data, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    stack.cleanup += [log.close, services.close,
                      database.drop,
                      lambda: _drop_prefix(services.redis_url, stack.prefix)]
    if not keep_data:
        stack.cleanup.append(lambda: shutil.rmtree(data, ignore_errors=True))
    wait_ready(stack.base, within=120)
    if stack.proc.poll() is not None:
        raise SystemExit(f"kwika up stopped: see {data / 'kwika.log'}")
    print(f"kwika up at {stack.base} (database {db_name}, prefix {stack.prefix}, log "
          f"{data / 'kwika.log'})", file=sys.stderr)
    return stack


def _drop_prefix(redis_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        batch = []
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                client.unlink(*batch)
                batch = []
        if batch:
            client.unlink(*batch)
    except redis.RedisError:
        pass
    finally:
        client.close()


def stop_stack(stack: Stack) -> None:
    if stack.proc is not None and stack.proc.poll() is None:
        os.killpg(stack.proc.pid, signal.SIGTERM)
        try:
            stack.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(stack.proc.pid, signal.SIGKILL)
            stack.proc.wait(10)
    for step in stack.cleanup:
        try:
            step()
        except Exception as exc:  # noqa: BLE001  (best effort; say what was left behind)
            print(f"cleanup: {exc!r}", file=sys.stderr)


def server_cpu(stack: Stack) -> dict[str, float]:
    """CPU seconds used so far by each process of `kwika up` (the servers and their render
    workers), by role: does `--workers N` use the cores?"""
    import psutil

    if stack.proc is None:
        return {}
    found = {}
    try:
        for child in psutil.Process(stack.proc.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                times = child.cpu_times()
                role = "render" if "multiprocessing" in " ".join(child.cmdline()) else "server"
                found[f"{role} {child.pid}"] = times.user + times.system
    except psutil.Error:
        pass
    return found


def scrape(stack: Stack) -> str:
    req = urllib.request.Request(stack.base + "/metrics",
                                 headers={"Authorization": f"Bearer {stack.metrics_token}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.read().decode()


def run_locust(locustfile: Path, stack: Stack, config: dict, out: Path, processes: int) -> int:
    """Locust headless, distributed: a master and `processes` workers on this machine."""
    config_path = out / "config.json"
    config_path.write_text(json.dumps(config))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KWIKA_LOAD_CONFIG": str(config_path),
           "KWIKA_LOAD_OUT": str(out / "tally")}
    # a master port of the run's own: on Locust's default (5557) a second run's workers would
    # join whichever master holds it, another run's
    port = str(free_port())
    cmd = [_venv_bin("locust"), "-f", str(locustfile), "--headless", "--host",
           config.get("host", stack.base),
           "--processes", str(processes), "--master-bind-host", "127.0.0.1",
           "--master-bind-port", port, "--master-host", "127.0.0.1", "--master-port", port,
           "--csv", str(out / "locust"), "--csv-full-history",
           "--stop-timeout", "5", "--loglevel", "WARNING", "--only-summary",
           "--exit-code-on-error", "0"]
    print("$ " + " ".join(cmd), file=sys.stderr)
    done = subprocess.run(cmd, check=False, env=env, cwd=ROOT, timeout=config["seconds"] + 600)
    return done.returncode


def tally(out: Path, processes: int = 0, within: float = 30.0) -> dict:
    """What the Locust processes' users saw, added up. The worker processes write theirs as they
    quit, which can be seconds after the master has exited: wait (up to `within` s) for the
    master's and every worker's file."""
    from collections import Counter

    deadline = time.monotonic() + within
    while (len(list((out / "tally").glob("*.json"))) < processes + 1
           and time.monotonic() < deadline):
        time.sleep(0.2)
    total = {"counts": Counter(), "tickets": Counter(), "clients": Counter(), "ranks": [],
             "purchase_ms": []}
    for path in sorted((out / "tally").glob("*.json")):
        part = json.loads(path.read_text())
        for key in ("counts", "tickets", "clients"):
            total[key].update(part[key])
        total["ranks"] += part["ranks"]
        total["purchase_ms"] += part["purchase_ms"]
    return total


def main(argv: list[str] | None = None) -> int:
    from loadtests.scenarios import SCENARIOS
    from loadtests.scenarios.report import drain_and_verify, write_report

    parser = argparse.ArgumentParser(prog="python -m loadtests.run",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--users", type=int, help="concurrent users (default: the scenario's)")
    parser.add_argument("--seconds", type=float, help="how long the load runs")
    parser.add_argument("--spawn-seconds", type=float, help="how fast the users arrive")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2,
                        help="Locust worker processes (default: one per core)")
    parser.add_argument("--workers", type=int, default=2, help="kwika server processes")
    parser.add_argument("--short", action="store_true", help="the CI version: small and quick")
    parser.add_argument("--report-dir", type=Path,
                        help=f"where the report goes (default {REPORTS}, or a temporary folder "
                             "with --short)")
    parser.add_argument("--keep", action="store_true", help="keep the run's data folder")
    args = parser.parse_args(argv)
    scenario = SCENARIOS[args.scenario]
    plan = scenario.plan(args)
    out = Path(tempfile.mkdtemp(prefix=f"kwika-{args.scenario}-"))
    report_dir = args.report_dir or (out if args.short else REPORTS)
    stack = start_stack(args.workers, keep_data=args.keep, env=dict(scenario.env))
    try:
        config = scenario.setup(stack, plan)
        before = scrape(stack)
        started = datetime.now(UTC)
        t0 = time.monotonic()
        cpu_before = server_cpu(stack)
        code = run_locust(scenario.locustfile, stack, config, out, args.processes)
        ran = time.monotonic() - t0
        plan["server_cpu"] = {pid: round(cpu - cpu_before.get(pid, 0.0), 1)
                              for pid, cpu in server_cpu(stack).items()}
        problems, drained = asyncio.run(drain_and_verify(stack, config, plan))
        after = scrape(stack)
        ok = write_report(report_dir, scenario, plan, config, stack, out, before, after,
                          problems, drained, started, ran, tally(out, args.processes),
                          locust_code=code)
    finally:
        stop_stack(stack)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
