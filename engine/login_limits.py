"""Throttling of logins and registrations, in Redis (scripts in `scripts/lua/`).

The policy, with the defaults of `engine.settings.Settings` (each a setting, see the README):

- Per client address: at most 60 logins and 20 registrations a minute (fixed windows), counting
  every attempt, right or wrong: each one costs a password hash. Beyond that, 429 with
  `Retry-After` until the window ends. Many real users can share one address (carrier-grade NAT),
  so raise these where that is common; the hash gate (`engine.hashing`) protects the CPU anyway.
- Per account and address: 10 failed logins, counted until 15 minutes pass without one. Then
  that address is refused for that account (429 `too_many_attempts`, even with the right
  password) until those 15 minutes pass. Another address, the real user's, is not affected:
  nobody can lock an account out by failing on purpose.
- Per account, from every address: once it has had 20 failures in that window, addresses that
  have not logged in to it in the last 30 days wait between checks, 1 s after the next failure,
  doubling with each failure, at most 60 s (429 with `Retry-After`). Addresses it knows (the
  user's home or phone) go on as before. A botnet spread over many addresses gets about one guess
  a minute; the real user on a known address is not slowed, on a new one at worst by a minute.

A check is reserved before the password is checked (counted as a failure until it succeeds), so
parallel guesses each take their own place and never more than the limits are checked. The same
answers hold for emails with no account, so the limits reveal nothing about which accounts exist.
"""

from __future__ import annotations

from typing import Literal

import redis.asyncio as redis

from engine.errors import RateLimited
from engine.keys import Keys
from engine.lua import load_script
from engine.settings import Settings

Action = Literal["login", "register"]
KNOWN_ADDRESS_DAYS = 30  # an address that logged in is spared the slowdown this long
KNOWN_ADDRESSES = 20  # remembered per account at most


def _wait(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes} minutes" if minutes >= 2 else f"{max(1, round(seconds))} seconds"


class LoginLimits:
    """The throttles of the policy, over one Redis client (scripts called by SHA, reloaded on
    NOSCRIPT by redis-py)."""

    def __init__(self, client: redis.Redis, keys: Keys, settings: Settings):
        self.keys, self.settings = keys, settings
        self._window = client.register_script(load_script("attempt_window").source)
        self._attempt = client.register_script(load_script("login_attempt").source)
        self._succeeded = client.register_script(load_script("login_succeeded").source)

    async def count(self, action: Action, address: str) -> None:
        """Count one `action` from `address`; RateLimited beyond the per-minute limit."""
        limit = (self.settings.login_per_ip_per_minute if action == "login"
                 else self.settings.register_per_ip_per_minute)
        allowed, wait_ms = await self._window(keys=[self.keys.attempts_from(action, address)],
                                              args=[limit, 60_000])
        if not allowed:
            raise RateLimited(f"too many {action} attempts from your network; try again in "
                              f"{_wait(wait_ms / 1000)}", retry_after=wait_ms / 1000)

    async def reserve(self, email: str, address: str) -> None:
        """Reserve one password check for `email` from `address`, or RateLimited
        (`too_many_attempts`) saying how long to wait."""
        p = self.settings
        answer = await self._attempt(keys=self._account_keys(email, address), args=[
            address, p.login_failures_per_account_ip, p.login_failure_window_seconds * 1000,
            p.login_slowdown_after, p.login_slowdown_max_seconds * 1000])
        if answer[0]:
            return
        wait = answer[1] / 1000
        if answer[2] == b"address":
            message = ("too many failed logins to this account from your network; try again in "
                       f"{_wait(wait)}")
        else:
            message = ("this account has had many failed logins; logins from new places are "
                       f"slowed: try again in {_wait(wait)}")
        raise RateLimited(message, code="too_many_attempts", retry_after=wait)

    async def succeeded(self, email: str, address: str) -> None:
        """The check reserved for `email` from `address` passed: forgive, remember the address."""
        await self._succeeded(keys=self._account_keys(email, address), args=[
            address, KNOWN_ADDRESS_DAYS * 86_400_000, KNOWN_ADDRESSES])

    def _account_keys(self, email: str, address: str) -> list[str]:
        return [self.keys.login_address(email, address), self.keys.login_account(email),
                self.keys.login_known(email)]
