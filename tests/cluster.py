"""A throwaway 3-node Redis Cluster on loopback, from the machine's `redis-server` binary."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    """A free port whose cluster bus port (+10000) is free too; Redis needs it <= 55535."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randint(20000, 55000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", candidate))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair for a cluster node")


class LocalCluster:
    def __init__(self, folder: Path, nodes: int = 3):
        self.folder = folder
        self.ports: list[int] = []
        self.procs: list[subprocess.Popen] = []
        self.nodes = nodes

    @staticmethod
    def available() -> bool:
        return bool(shutil.which("redis-server") and shutil.which("redis-cli"))

    def start(self) -> str:
        for _ in range(self.nodes):
            port = free_port()
            work = self.folder / str(port)
            work.mkdir(parents=True)
            self.procs.append(subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", "nodes.conf", "--save", "", "--appendonly", "no",
                 "--dir", str(work)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            self.ports.append(port)
        for port in self.ports:
            self._wait_ping(port)
        subprocess.run(
            ["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
             "--cluster-yes"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            timeout=60)
        for port in self.ports:
            self._wait_ok(port)
        return f"redis://127.0.0.1:{self.ports[0]}"

    def _wait_ping(self, port: int) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            out = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, check=False)
            if out.stdout.strip() == "PONG":
                return
            time.sleep(0.05)  # polling a starting server with a deadline
        raise RuntimeError(f"redis-server on {port} did not start")

    def _wait_ok(self, port: int) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            out = subprocess.run(["redis-cli", "-p", str(port), "cluster", "info"],
                                 capture_output=True, text=True, check=False)
            if "cluster_state:ok" in out.stdout:
                return
            time.sleep(0.05)
        raise RuntimeError("cluster did not become ready")

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
