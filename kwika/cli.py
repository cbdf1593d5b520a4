"""The `kwika` command: up, serve, worker, migrate.

    kwika up [--demo]    embedded Redis/Postgres when unconfigured, migrate, (demo data), load the
                         stock of events on sale, serve, and sweep expired holds
    kwika serve          serve with the configured REDIS_URL / DATABASE_URL
    kwika worker         sweep expired holds, write sales to Postgres, send email (run one
                         beside `serve` deployments)
    kwika audit [ID...]  check the books of events on sale (exit 1 on any problem)
    kwika migrate        apply pending migrations
    kwika keys [--kid K] print a new ticket signing key (KWIKA_TICKET_SIGNING_KEYS) and its
                         public key
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import logging
import multiprocessing
import multiprocessing.connection
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path

import msgspec

from engine.db import MigrationError, create_pool, migrate
from engine.embedded import EmbeddedError, ensure_services
from engine.logs import setup_logging
from engine.settings import Secret, Settings, SettingsError, load_settings

log = logging.getLogger("kwika")
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # engine/metrics.py


def _uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _persistent_secret(settings: Settings, data_dir: Path) -> Settings:
    """In `up` without KWIKA_SECRET_KEY, keep one secret in the data folder so sessions survive
    restarts and all worker processes agree."""
    if os.environ.get("KWIKA_SECRET_KEY"):
        return settings
    path = data_dir / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return msgspec.structs.replace(settings, secret_key=path.read_text().strip())


def _persistent_ticket_keys(settings: Settings, data_dir: Path) -> Settings:
    """In `up` without KWIKA_TICKET_SIGNING_KEYS, keep a development ticket signing key in the
    data folder beside the secret key, so tickets stay valid across restarts."""
    if settings.ticket_signing_keys:
        return settings
    from engine.tickets.keyring import Keyring

    path = data_dir / "ticket_signing_keys"
    try:  # created readable by its owner only, never world-readable for an instant
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as out:
            out.write(Keyring.generate().to_text())
    text = path.read_text().strip()
    log.info("ticket signing key %s kept in %s", Keyring.parse(text).current_kid, path)
    return msgspec.structs.replace(settings, ticket_signing_keys=Secret(text))


def _dev_mailbox(settings: Settings):
    """`kwika up` with no SMTP server: an SMTP server of its own on 127.0.0.1 that keeps what it
    is sent for /dev/mailbox; the mailer is pointed at it. Runs in a thread of this (the
    parent) process, so it outlives forks of the server processes."""
    from engine.keys import Keys
    from fulfillment.mail.devbox import DevMailbox

    mailbox = DevMailbox(settings.redis_url, Keys(settings.redis_prefix))
    mailbox.start()
    return msgspec.structs.replace(settings, smtp_host=mailbox.host, smtp_port=mailbox.port,
                                   smtp_security="none", smtp_username="",
                                   smtp_password=Secret(""), dev_mailbox=True), mailbox


def _print_new_key(kid: str | None) -> int:
    """`kwika keys`: a fresh Ed25519 key as KWIKA_TICKET_SIGNING_KEYS takes it, and its public
    key. Printed, never logged."""
    from engine.tickets.keyring import Keyring, KeyringError

    try:
        keyring = Keyring.generate(kid)
    except KeyringError as exc:
        print(f"kwika: {exc}", file=sys.stderr)
        return 2
    new = keyring.current_kid
    print(f"KWIKA_TICKET_SIGNING_KEYS={keyring.to_text()}")
    print(f"# public key {new} (Ed25519, base64): {keyring.public_key_text(new)}")
    print(f"# to rotate, put {new}:... first and keep the old entries after it, comma-separated")
    return 0


async def _migrate_and_seed(settings: Settings, demo: bool) -> None:
    conn_pool = await create_pool(settings.database_url, 1, 2)
    try:
        async with conn_pool.acquire() as conn:
            applied = await migrate(conn)
        log.info("migrations: %s", ", ".join(applied) if applied else "up to date")
        if demo:
            from concurrent.futures import ThreadPoolExecutor

            from engine.accounts import Accounts
            from engine.catalog import Catalog
            from engine.demo import load_demo
            from engine.keys import Keys
            from storefront.app import redis_client

            client = redis_client(settings)
            with ThreadPoolExecutor(2) as pool:
                accounts = Accounts(conn_pool, client, Keys(settings.redis_prefix), pool, settings)
                created = await load_demo(Catalog(conn_pool), accounts)
            await client.aclose()
            log.info("demo data: %s", "loaded" if created else "already present")
    finally:
        await conn_pool.close()


async def _reconcile(settings: Settings) -> None:
    """Load every published event's stock into Redis (idempotent; live counters are kept), so a
    fresh or flushed Redis is ready before traffic arrives."""
    from engine.catalog import Catalog
    from engine.inventory import Inventory
    from engine.keys import Keys
    from engine.onsale import connect, sync_all
    from storefront.app import redis_client

    pool = await create_pool(settings.database_url, 1, 2)
    client = redis_client(settings)
    inventory = Inventory(client, Keys(settings.redis_prefix), settings.hold_ttl_seconds)
    try:
        loaded = await sync_all(connect(Catalog(pool), inventory), inventory)
        log.info("stock loaded for %d event(s) on sale", loaded)
    finally:
        await inventory.close()
        await client.aclose()
        await pool.close()


async def _audit(settings: Settings, event_ids: list[int]) -> int:
    """Print each event's problems (or that its books balance); 1 when any has problems."""
    from engine.audit import audit
    from engine.inventory import Inventory
    from engine.keys import Keys
    from storefront.app import redis_client

    client = redis_client(settings)
    pool = await create_pool(settings.database_url, 1, 2)
    inventory = Inventory(client, Keys(settings.redis_prefix), settings.hold_ttl_seconds)
    try:
        failed = 0
        if not event_ids:  # every event Redis or the catalog has on sale
            live = await pool.fetch("SELECT id FROM events WHERE status IN ('published', 'postponed')")
            event_ids = sorted({r["id"] for r in live} | set(await inventory.events_on_sale()))
        if not event_ids:
            print("no events on sale")
        for event_id in event_ids:
            problems = await audit(inventory, event_id, pool,
                                   grace_seconds=settings.audit_grace_seconds)
            print(f"event {event_id}: " + ("books balance" if not problems else
                                          f"{len(problems)} problem(s)"))
            for problem in problems:
                print(f"  - {problem}")
            failed += bool(problems)
        return 1 if failed else 0
    finally:
        await inventory.close()
        await pool.close()
        await client.aclose()


async def _work_until_signalled(settings: Settings) -> None:
    """`kwika worker`: the sweeper and its rounds (reconciliation, payments whose webhook never
    came, refunds due) until a signal."""
    import aiohttp

    from engine.catalog import Catalog
    from engine.inventory import Inventory
    from engine.keys import Keys
    from engine.onsale import connect
    from engine.orders import Orders
    from engine.payments.registry import configured
    from engine.payments.service import Payments
    from engine.sweeper import sweep_forever, worker_jobs
    from fulfillment.mail.worker import run_mail
    from fulfillment.worker import run_fulfillment
    from storefront.app import redis_client

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    client = redis_client(settings)
    pool = await create_pool(settings.database_url, 1, 4)
    inventory = Inventory(client, Keys(settings.redis_prefix), settings.hold_ttl_seconds)
    catalog = connect(Catalog(pool), inventory)
    http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(),
                                 timeout=aiohttp.ClientTimeout(total=30))
    site = settings.public_url or f"http://{settings.host}:{settings.port}"
    gateways = {g.name: g for g in configured(settings, http, self_url=site)}
    payments = Payments(pool, inventory, Orders(inventory), gateways)
    sweeper = asyncio.create_task(sweep_forever(
        inventory, jobs=worker_jobs(catalog, inventory, payments)), name="sweeper")
    fulfilling = asyncio.create_task(run_fulfillment(
        inventory, pool, stop, claim_idle_ms=settings.fulfillment_claim_idle_ms), name="fulfillment")
    mailing = asyncio.create_task(run_mail(settings, pool, client, inventory.keys, stop),
                                  name="mail")
    try:
        await stop.wait()
        log.info("stopping worker (pid %d)", os.getpid())
    finally:
        sweeper.cancel()
        for task, outcome in zip((sweeper, fulfilling, mailing), await asyncio.gather(
                sweeper, fulfilling, mailing, return_exceptions=True), strict=True):
            if isinstance(outcome, Exception):
                log.error("%s stopped: %r", task.get_name(), outcome)
        await http.close()
        await inventory.close()
        await pool.close()
        await client.aclose()


def _worker_loops() -> dict:
    """The fulfillment loops `kwika up` runs in its first server process (`kwika worker` runs
    the same ones on its own)."""
    from fulfillment.mail.worker import run_mail
    from fulfillment.worker import run_fulfillment
    from storefront.appkeys import DB, INVENTORY, KEYS, REDIS, SETTINGS

    async def fulfillment(app, stop: asyncio.Event) -> None:
        await run_fulfillment(app[INVENTORY], app[DB], stop,
                              claim_idle_ms=app[SETTINGS].fulfillment_claim_idle_ms)

    async def mail(app, stop: asyncio.Event) -> None:
        await run_mail(app[SETTINGS], app[DB], app[REDIS], app[KEYS], stop)

    return {"fulfillment": fulfillment, "mail": mail}


async def _serve_until_signalled(settings: Settings, sock: socket.socket | None,
                                 sweeper: bool = False) -> None:
    """Serve until SIGINT or SIGTERM, then shut down once: repeated signals (Ctrl-C reaches
    every process of the group, and the parent also forwards SIGTERM) do not cut the cleanup."""
    from aiohttp import web

    from storefront.app import create_app

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    background = {}
    if sweeper:  # `kwika up`: this process is also the worker
        background = _worker_loops()
    runner = web.AppRunner(create_app(settings, sweeper=sweeper, background=background),
                           access_log=None, shutdown_timeout=10)
    await runner.setup()
    try:
        site = (web.SockSite(runner, sock) if sock
                else web.TCPSite(runner, settings.host, settings.port))
        await site.start()
        await stop.wait()
        log.info("stopping (pid %d)", os.getpid())
    finally:
        await runner.cleanup()


def _serve_one(settings: Settings, sock: socket.socket | None, sweeper: bool = False) -> None:
    setup_logging(settings.log_level, settings.log_json)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1`: where is it stuck?
    _uvloop()
    asyncio.run(_serve_until_signalled(settings, sock, sweeper))


def _metrics_dir() -> Path | None:
    """Point PROMETHEUS_MULTIPROC_DIR at a fresh folder for this run's server processes (before
    anything imports prometheus_client, which reads it once), unless it is set already; return
    the folder made, for removal at the end."""
    if given := os.environ.get(METRICS_DIR_ENV):
        Path(given).mkdir(parents=True, exist_ok=True)
        return None
    made = Path(tempfile.mkdtemp(prefix="kwika-metrics-"))
    os.environ[METRICS_DIR_ENV] = str(made)
    return made


def _metrics_process_dead(pid: int | None) -> None:
    """A server process ended: forget its live gauges (its counters stay in the sums)."""
    path = os.environ.get(METRICS_DIR_ENV)
    if pid is None or not path:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, path)


def serve(settings: Settings, sweeper: bool = False) -> int:
    """Serve on host:port with `settings.workers` processes sharing one listening socket (the
    first also runs the sweeper when asked); return the exit status (0 after SIGINT/SIGTERM)."""
    log.info("serving on http://%s:%d with %d worker(s)", settings.host, settings.port, settings.workers)
    if settings.workers == 1:
        _serve_one(settings, None, sweeper)
        return 0
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(4096)
    sock.set_inheritable(True)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_serve_one, args=(settings, sock, sweeper and i == 0), daemon=False)
             for i in range(settings.workers)]
    for p in procs:
        p.start()

    def forward(signum: int, _frame: object) -> None:
        # the workers stop on SIGTERM; the parent waits for them, then stops embedded servers
        for p in procs:
            if p.pid is not None and p.exitcode is None:
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        running = {p.sentinel: p for p in procs}
        while running:  # as each worker exits, its live metrics files go (its counts stay)
            for sentinel in multiprocessing.connection.wait(list(running)):
                gone = running.pop(sentinel)
                gone.join()
                _metrics_process_dead(gone.pid)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    failed = [p.exitcode for p in procs if p.exitcode not in (0, -signal.SIGTERM)]
    if failed:
        log.error("worker(s) exited with %s", failed)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kwika", description="Kwika ticket on-sale engine")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="embedded servers when unconfigured, migrate, serve")
    up.add_argument("--demo", action="store_true", help="load demo provider and events")
    serve_p = sub.add_parser("serve", help="serve the storefront (REDIS_URL and DATABASE_URL set)")
    sub.add_parser("migrate", help="apply pending database migrations")
    sub.add_parser("worker", help="the hold sweeper (REDIS_URL and DATABASE_URL set)")
    audit_p = sub.add_parser("audit", help="check the books of events on sale in Redis")
    audit_p.add_argument("event_ids", nargs="*", type=int, help="default: every event on sale")
    keys_p = sub.add_parser("keys", help="print a new ticket signing key and its public key")
    keys_p.add_argument("--kid", help="its key id, 1-8 letters and digits (default: random)")
    for p in (up, serve_p):
        p.add_argument("--host")
        p.add_argument("--port", type=int)
        p.add_argument("--workers", type=int, help="processes sharing the port (default 1)")
    args = parser.parse_args(argv)
    if args.command == "keys":  # needs no configuration
        return _print_new_key(args.kid)

    try:
        settings = load_settings(host=getattr(args, "host", None), port=getattr(args, "port", None),
                                 workers=getattr(args, "workers", None))
    except SettingsError as exc:
        print(f"kwika: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_json)
    if args.command == "up" and not os.environ.get("KWIKA_SANDBOX", "").strip():
        # development: the whole purchase flow runs with no gateway keys
        settings = msgspec.structs.replace(settings, sandbox=True)

    services = None
    embedded_ok = args.command in ("migrate", "audit") and not (settings.database_url and settings.redis_url)
    if args.command == "up" or embedded_ok:
        data_dir = Path(settings.data_dir).resolve()
        try:
            services = ensure_services(data_dir, settings.redis_url, settings.database_url)
        except EmbeddedError as exc:
            print(f"kwika: {exc}", file=sys.stderr)
            return 1
        if services.embedded:
            log.info("started embedded %s under %s", " and ".join(services.embedded), data_dir)
        settings = msgspec.structs.replace(
            settings, redis_url=services.redis_url, database_url=services.database_url)
        settings = _persistent_secret(settings, data_dir)
        if args.command == "up":
            settings = _persistent_ticket_keys(settings, data_dir)
    elif not (settings.redis_url and settings.database_url):
        print(f"kwika: {args.command} needs REDIS_URL and DATABASE_URL (or use `kwika up`)",
              file=sys.stderr)
        return 2

    metrics_dir = _metrics_dir() if args.command in ("up", "serve") else None
    mailbox = None
    if args.command == "up" and not settings.smtp_host and settings.mail and \
            os.environ.get("KWIKA_DEV_MAILBOX", "").strip().lower() not in ("0", "false", "no", "off"):
        settings, mailbox = _dev_mailbox(settings)
    try:
        if args.command in ("up", "migrate"):
            asyncio.run(_migrate_and_seed(settings, demo=getattr(args, "demo", False)))
        if args.command in ("up", "worker"):
            asyncio.run(_reconcile(settings))
        if args.command in ("up", "serve"):
            return serve(settings, sweeper=args.command == "up")
        if args.command == "audit":
            return asyncio.run(_audit(settings, args.event_ids))
        if args.command == "worker":
            _uvloop()
            asyncio.run(_work_until_signalled(settings))
        return 0
    except MigrationError as exc:
        print(f"kwika: {exc}", file=sys.stderr)
        return 1
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        if mailbox is not None:
            mailbox.stop()
        if services is not None:
            services.close()  # stop the embedded servers now, not only at interpreter exit


if __name__ == "__main__":
    sys.exit(main())
