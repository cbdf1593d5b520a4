"""Rate limits that span events (scripts/lua/rate_limit.lua; the GCRA of includes/ratelimit.lua).

Limits within one event (holds per buyer and per address) ride inside the event's own scripts;
this is for the few that cannot: new guest identities per client address, across all events.
"""

from __future__ import annotations

from engine.lua import ScriptRunner, load_script


class RateLimiter:
    def __init__(self, runner: ScriptRunner):
        self.runner = runner
        self.script = load_script("rate_limit")

    async def wait_ms(self, key: str, burst: int, per_minute: int) -> int:
        """Let one request through `key`'s limit: 0 when it passed (and is counted), else how
        many milliseconds until it would. A burst of 0 means no limit."""
        if burst <= 0:
            return 0
        return int(await self.runner.run(self.script, (key,), (burst, max(per_minute, 1))))
