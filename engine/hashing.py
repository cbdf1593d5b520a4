"""Password hashing off the event loop, with a bound on how much of it runs at once.

Argon2id is expensive on purpose (memory and CPU), so a flood of logins is a flood of CPU work.
Every hash and check runs on the executor, at most `concurrency` at once per process, with at
most `queue` more waiting their turn; a call beyond that is refused at once with `Busy` (503 with
`Retry-After`) instead of queueing without end. The flood then slows the flood, and the event loop
and the rest of the executor stay free for everyone else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from engine.errors import Busy

T = TypeVar("T")
BUSY_RETRY_SECONDS = 1


class HashGate:
    """At most `concurrency` jobs running on `executor`, at most `queue` waiting for a turn."""

    def __init__(self, executor: Executor | None, concurrency: int, queue: int):
        if concurrency < 1 or queue < 0:
            raise ValueError("concurrency must be at least 1 and queue at least 0")
        self.executor = executor
        self.concurrency, self.queue = concurrency, queue
        self._slots = asyncio.Semaphore(concurrency)
        self.running = 0  # jobs holding a slot, until their thread has finished
        self.waiting = 0

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on the executor once a slot is free; Busy when too many are waiting."""
        if self._slots.locked():
            if self.waiting >= self.queue:
                raise Busy("the server is busy checking passwords; try again in a moment",
                           retry_after=BUSY_RETRY_SECONDS)
            self.waiting += 1
            try:
                await self._slots.acquire()
            finally:
                self.waiting -= 1
        else:
            await self._slots.acquire()
        self.running += 1
        try:
            job = asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
        except BaseException:
            self._done(None)
            raise
        # The slot is freed when the thread finishes, not when the caller stops waiting: a
        # cancelled login must not let one more hash start beside the one still running.
        job.add_done_callback(self._done)
        return await asyncio.shield(job)

    def _done(self, job: asyncio.Future | None) -> None:
        if job is not None and not job.cancelled():
            job.exception()  # seen here, so an abandoned job's error is not reported as lost
        self.running -= 1
        self._slots.release()


class PasswordHashing:
    """Argon2id hashing and checking through a `HashGate`."""

    def __init__(self, gate: HashGate, memory_kib: int = 65_536, time_cost: int = 3):
        # argon2id; the defaults are argon2-cffi's RFC 9106 "low memory" profile
        self.hasher = PasswordHasher(memory_cost=memory_kib, time_cost=time_cost)
        self.gate = gate
        # checked against when an email is unknown, so that costs the same as a wrong password
        self.dummy_hash = self.hasher.hash("not a real password")

    async def hash(self, password: str) -> str:
        return await self.gate.run(self.hasher.hash, password)

    async def verify(self, stored: str, password: str) -> bool:
        """Whether `password` matches the `stored` hash (False for a malformed hash too)."""
        return await self.gate.run(self._verify, stored, password)

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        return self.hasher.check_needs_rehash(stored)
