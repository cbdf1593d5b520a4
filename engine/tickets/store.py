"""PDF tickets off the event loop: `TicketRenderer` renders in a process pool it owns, `PdfStore`
keeps one file per order and renders it again when it is gone.

    renderer = TicketRenderer(settings.ticket_render_workers)
    store = PdfStore(settings.tickets_path, renderer)
    pdf = await store.render_and_store(order_doc)             # the worker, once paid
    pdf = await store.get_or_render(number, load_order_doc)   # a download, any time later
    await store.cleanup(older_than_days=30)                   # daily
    await renderer.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import re
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Self

from engine.tickets.docs import OrderDoc

ORDER_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
DAY = 24 * 3600
# Rendering is background work: on a machine that also serves, a rush's holds and payments come
# first and the PDFs take what CPU is left (a ticket's PDF is ~100 ms of CPU; a burst of a
# thousand orders would otherwise starve the server processes for a minute).
RENDER_NICENESS = 10


def _warm() -> None:
    """Each worker lowers its priority and imports the renderer when it starts, not on its
    first order."""
    with contextlib.suppress(OSError):
        os.nice(max(0, RENDER_NICENESS - os.nice(0)))
    import engine.tickets.pdf  # noqa: F401


def _render(order: OrderDoc) -> bytes:
    from engine.tickets.pdf import render_order_pdf

    return render_order_pdf(order)


class TicketRenderer:
    """Renders `OrderDoc`s to PDF in worker processes (`workers`, 0: one per CPU), so neither
    the event loop nor the GIL of the caller's process is held while a PDF is drawn.

    Workers are spawned (not forked from a process with an event loop and threads), all at once
    and from a thread, on `start()` or the first render: starting an interpreter takes long
    enough to stall the loop. A worker that dies (killed, out of memory) breaks the pool; the
    next render makes a new one and is tried once more.
    """

    def __init__(self, workers: int = 0):
        self.workers = workers or len(os.sched_getaffinity(0)) or 1
        self._pool: ProcessPoolExecutor | None = None
        self._started: asyncio.Future[None] | None = None
        self._closed = False

    async def start(self) -> None:
        """Start the worker processes (idempotent; `render` does it when needed)."""
        if self._closed:
            raise RuntimeError("the ticket renderer is closed")
        if self._started is None:
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_warm)
            self._started = asyncio.ensure_future(asyncio.to_thread(_spawn, self._pool,
                                                                    self.workers))
        await asyncio.shield(self._started)

    async def render(self, order: OrderDoc) -> bytes:
        """The PDF of `order` (one page per ticket)."""
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            await self.start()
            pool = self._pool
            try:
                return await loop.run_in_executor(pool, _render, order)
            except BrokenProcessPool:
                if attempt == 2:
                    raise
                if self._pool is pool:  # the first to notice replaces it
                    self._started = None
                    pool.shutdown(wait=False, cancel_futures=True)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Stop the workers: renders not started are cancelled, running ones finish."""
        self._closed = True
        pool, self._pool = self._pool, None
        if self._started is not None:
            await asyncio.gather(self._started, return_exceptions=True)
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _spawn(pool: ProcessPoolExecutor, workers: int) -> None:
    # one task per worker, submitted together: the pool starts a process for each
    for future in [pool.submit(_warm) for _ in range(workers)]:
        future.result()


class PdfStore:
    """One PDF per order under `folder` (`<order number>.pdf`), written atomically; file work
    runs in threads. Files older than `cleanup`'s age are removed and rendered again on demand."""

    def __init__(self, folder: Path | str, renderer: TicketRenderer):
        self.folder = Path(folder)
        self.renderer = renderer
        self._rendering: dict[str, asyncio.Future[bytes]] = {}

    def path_for(self, order_number: str) -> Path:
        if not ORDER_NUMBER.fullmatch(order_number):
            raise ValueError(f"not an order number: {order_number[:40]!r}")
        return self.folder / f"{order_number}.pdf"

    async def get(self, order_number: str) -> bytes | None:
        """The stored PDF, or None when there is none (never rendered, or cleaned up)."""
        path = self.path_for(order_number)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None

    async def render_and_store(self, order: OrderDoc) -> bytes:
        """Render `order` and keep it, replacing any older file (e.g. after a transfer)."""
        pdf = await self.renderer.render(order)
        await asyncio.to_thread(self._write, self.path_for(order.order_number), pdf)
        return pdf

    async def get_or_render(self, order_number: str,
                            make_doc: Callable[[], Awaitable[OrderDoc]]) -> bytes:
        """The stored PDF, else one rendered now from `await make_doc()` and kept. Concurrent
        calls for one order share one render."""
        pdf = await self.get(order_number)
        if pdf is not None:
            return pdf
        pending = self._rendering.get(order_number)
        if pending is None:
            pending = asyncio.ensure_future(self._make(order_number, make_doc))
            self._rendering[order_number] = pending
            pending.add_done_callback(lambda done: self._settled(order_number, done))
        return await asyncio.shield(pending)

    def _settled(self, order_number: str, done: asyncio.Future[bytes]) -> None:
        self._rendering.pop(order_number, None)
        if not done.cancelled():
            done.exception()  # seen here too, in case every caller was cancelled meanwhile

    async def _make(self, order_number: str,
                    make_doc: Callable[[], Awaitable[OrderDoc]]) -> bytes:
        order = await make_doc()
        if order.order_number != order_number:
            raise ValueError(f"asked for {order_number}, given {order.order_number}")
        return await self.render_and_store(order)

    async def remove(self, order_number: str) -> None:
        """Forget an order's file (its tickets changed); the next download renders it again."""
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self.path_for(order_number).unlink)

    async def cleanup(self, older_than_days: float = 30, now: float | None = None) -> int:
        """Remove the PDFs last written more than `older_than_days` ago (and any temporary file
        a crash left); return how many files went."""
        cutoff = (time.time() if now is None else now) - older_than_days * DAY
        return await asyncio.to_thread(self._remove_older_than, cutoff)

    def _remove_older_than(self, cutoff: float) -> int:
        removed = 0
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if not (entry.name.endswith(".pdf") or ".pdf.tmp" in entry.name):
                continue
            with contextlib.suppress(FileNotFoundError):
                if entry.is_file(follow_symlinks=False) and \
                        entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
        return removed

    def _write(self, path: Path, pdf: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}-{id(pdf)}")
        try:
            tmp.write_bytes(pdf)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
