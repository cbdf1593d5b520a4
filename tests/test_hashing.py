"""The hash gate: at most `concurrency` password jobs at once, `queue` more waiting, the rest Busy."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from engine.errors import Busy
from engine.hashing import HashGate, PasswordHashing


class Blocker:
    """A job that holds its executor thread until released, and records how many ran at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self._lock = threading.Lock()
        self.now = self.most = self.done = 0

    def __call__(self) -> str:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
        self.release.wait()
        with self._lock:
            self.now -= 1
            self.done += 1
        return "hashed"


@pytest.fixture
def executor():
    with ThreadPoolExecutor(max_workers=8) as pool:
        yield pool


async def test_the_gate_admits_exactly_concurrency_plus_queue(executor):
    gate, job = HashGate(executor, concurrency=2, queue=3), Blocker()
    tasks = [asyncio.create_task(gate.run(job)) for _ in range(10)]
    try:
        # tasks start in order: two take the slots, three wait, the other five are refused at once
        refused = await asyncio.gather(*tasks[5:], return_exceptions=True)
        assert all(isinstance(r, Busy) and r.retry_after == 1 for r in refused)
        assert (gate.running, gate.waiting) == (2, 3)
    finally:
        job.release.set()
    assert await asyncio.gather(*tasks[:5]) == ["hashed"] * 5
    assert job.most == 2 and job.done == 5
    assert (gate.running, gate.waiting) == (0, 0)


async def test_a_cancelled_caller_keeps_its_slot_until_its_thread_is_done(executor):
    gate, job = HashGate(executor, concurrency=1, queue=1), Blocker()
    first = asyncio.create_task(gate.run(job))
    await asyncio.sleep(0)  # its first step takes the free slot (no waiting involved)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert gate.running == 1  # its thread still hashes: no second hash may start beside it
    second = asyncio.create_task(gate.run(lambda: "next"))
    await asyncio.sleep(0)
    assert gate.waiting == 1
    with pytest.raises(Busy):
        await gate.run(job)
    job.release.set()
    assert await second == "next"  # the slot came back when the abandoned thread finished
    assert job.most == 1 and job.done == 1
    assert (gate.running, gate.waiting) == (0, 0)


async def test_a_waiting_caller_that_gives_up_leaves_the_queue(executor):
    gate, job = HashGate(executor, concurrency=1, queue=1), Blocker()
    holder = asyncio.create_task(gate.run(job))
    waiter = asyncio.create_task(gate.run(job))
    await asyncio.sleep(0)
    assert (gate.running, gate.waiting) == (1, 1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert gate.waiting == 0
    job.release.set()
    assert await holder == "hashed"


async def test_password_hashing_round_trip(executor):
    hashing = PasswordHashing(HashGate(executor, 2, 2), memory_kib=1024, time_cost=1)
    stored = await hashing.hash("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert await hashing.verify(stored, "correct horse battery") is True
    assert await hashing.verify(stored, "wrong") is False
    assert await hashing.verify("not a hash", "anything") is False
    assert await hashing.verify(hashing.dummy_hash, "anything") is False


def test_the_gate_needs_a_slot():
    with pytest.raises(ValueError):
        HashGate(None, 0, 1)
    with pytest.raises(ValueError):
        HashGate(None, 1, -1)
