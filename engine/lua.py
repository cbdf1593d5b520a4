"""The Lua scripts of `scripts/lua/`, loaded once by SHA and called with EVALSHA.

A script may pull in shared helpers with a line `--- @include "name"`, which pastes
`scripts/lua/includes/name.lua` in its place (the convention BullMQ uses); the result is what
Redis runs and what the SHA is computed over. `ScriptRunner` sends concurrent calls to Redis
together: each call still runs atomically on its own and gets its own result, but many calls
share one round trip (automatic pipelining). A NOSCRIPT reply (after SCRIPT FLUSH or a failover)
loads the script again and retries the call.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as redis
from redis.exceptions import NoScriptError, ResponseError

LUA_DIR = Path(__file__).resolve().parents[1] / "scripts" / "lua"
_INCLUDE = re.compile(r'^--- @include "([a-z_]+)"$', re.MULTILINE)


def _bulk(value: Any) -> bytes:
    """One RESP bulk string."""
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode()
    elif isinstance(value, int) and not isinstance(value, bool):
        data = b"%d" % value
    else:
        raise TypeError(f"script arguments are bytes, str or int, not {type(value).__name__}")
    return b"$%d\r\n%s\r\n" % (len(data), data)


@dataclass(frozen=True)
class Script:
    name: str
    source: str
    sha: str


def load_script(name: str, folder: Path = LUA_DIR) -> Script:
    """Read `name.lua` with its includes resolved."""
    text = (folder / f"{name}.lua").read_text()

    def include(match: re.Match[str]) -> str:
        return (folder / "includes" / f"{match.group(1)}.lua").read_text()

    source = _INCLUDE.sub(include, text)
    return Script(name, source, hashlib.sha1(source.encode()).hexdigest())


@dataclass
class _Call:
    script: Script
    keys: tuple[str, ...]
    args: tuple[Any, ...]
    future: asyncio.Future
    extra_keys: tuple[str, ...] = ()
    packed: bytes = b""


class ScriptRunner:
    """Runs scripts through `client`, batching calls made in the same moment into one pipeline.

    `max_batch` bounds one pipeline; up to `max_in_flight` pipelines are on the wire at once.
    """

    def __init__(self, client: redis.Redis, *, max_batch: int = 512, max_in_flight: int = 4):
        self.client = client
        self.max_batch = max_batch
        self._queue: deque[_Call] = deque()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._scheduled = False
        self._tasks: set[asyncio.Task] = set()
        self._heads: dict[tuple[str, tuple[str, ...], int], bytes] = {}

    async def run(self, script: Script, keys: tuple[str, ...], args: tuple[Any, ...],
                  extra_keys: tuple[str, ...] = ()) -> Any:
        """Run `script` with KEYS `keys + extra_keys`: `keys` is a constant list (its packed form
        is cached), `extra_keys` vary per call (a buyer's rate-limit bucket, say)."""
        future = asyncio.get_running_loop().create_future()
        call = _Call(script, keys, args, future, extra_keys)
        if isinstance(self.client, redis.Redis):
            call.packed = self._pack(call)  # a bad argument fails here, for this caller only
        self._queue.append(call)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start_flush)
        return await future

    def _start_flush(self) -> None:
        self._scheduled = False
        task = asyncio.create_task(self._flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self) -> None:
        async with self._slots:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
                await self._send(batch)

    async def _send(self, batch: list[_Call]) -> None:
        try:
            results = await self._pipeline(batch)
            missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            if missing:
                for script in {batch[i].script.name: batch[i].script for i in missing}.values():
                    await self.client.script_load(script.source)
                retried = await self._pipeline([batch[i] for i in missing])
                for i, r in zip(missing, retried):
                    results[i] = r
        except BaseException as exc:  # connection lost, cancelled: every caller hears of it
            for call in batch:
                if not call.future.done():
                    call.future.set_exception(exc if isinstance(exc, Exception)
                                              else ConnectionError("pipeline cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        for call, result in zip(batch, results):
            if call.future.done():
                continue
            if isinstance(result, Exception):
                call.future.set_exception(result)
            else:
                call.future.set_result(result)

    async def _pipeline(self, batch: list[_Call]) -> list[Any]:
        if not isinstance(self.client, redis.Redis):  # a cluster client routes by slot itself
            pipe = self.client.pipeline(transaction=False)
            for call in batch:
                keys = call.keys + call.extra_keys
                pipe.execute_command("EVALSHA", call.script.sha, len(keys), *keys, *call.args)
            return await pipe.execute(raise_on_error=False)
        # One connection, every command packed and written at once, replies read in order.
        # Packing here (with the constant "EVALSHA sha numkeys keys..." part cached) instead of
        # through redis-py's generic pipeline is what lets one process keep up with Redis.
        payload = b"".join(call.packed for call in batch)
        pool = self.client.connection_pool
        conn = await pool.get_connection()
        try:
            await conn.send_packed_command(payload, check_health=False)
            results: list[Any] = []
            for _ in batch:
                try:
                    results.append(await conn.read_response())
                except ResponseError as exc:  # an error reply for this call only
                    results.append(exc)
        except BaseException:
            await conn.disconnect()  # replies may be half read: never reuse this connection
            raise
        finally:
            await pool.release(conn)
        return results

    def _pack(self, call: _Call) -> bytes:
        extra = len(call.extra_keys)
        head = self._heads.get((call.script.sha, call.keys, extra))
        if head is None:
            head = b"".join(_bulk(x) for x in ("EVALSHA", call.script.sha,
                                               str(len(call.keys) + extra), *call.keys))
            if len(self._heads) > 100_000:
                self._heads.clear()
            self._heads[(call.script.sha, call.keys, extra)] = head
        count = 3 + len(call.keys) + extra + len(call.args)
        return (b"*%d\r\n" % count + head + b"".join(_bulk(k) for k in call.extra_keys)
                + b"".join(_bulk(a) for a in call.args))

    async def close(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
