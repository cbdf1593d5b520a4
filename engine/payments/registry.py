"""Which payment gateways this installation has, by name.

    gateways = configured(settings, session, self_url="http://127.0.0.1:8080")
    gateway = gateways.get("sandbox")          # UnknownGateway when it is not configured

Today: the sandbox, when `KWIKA_SANDBOX` is on. Flutterwave, Stripe and M-Pesa join here when
their keys are set. The HTTP `session` belongs to the caller (the app opens and closes it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import aiohttp

from engine.payments.base import Gateway
from engine.payments.sandbox import SandboxGateway
from engine.settings import Settings


class UnknownGateway(LookupError):
    """No gateway of that name is configured (a webhook or checkout naming it gets a 404)."""


class Gateways:
    """The configured gateways, looked up by name."""

    def __init__(self, gateways: Iterable[Gateway] = ()):
        self._by_name = {g.name: g for g in gateways}

    def get(self, name: str) -> Gateway:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownGateway(f"no payment gateway {name!r} is configured") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Gateway]:
        return iter(self._by_name.values())


def configured(settings: Settings, session: aiohttp.ClientSession, *, self_url: str) -> Gateways:
    """The gateways `settings` turn on. `self_url`: this app's own address, where the sandbox is
    served unless `KWIKA_SANDBOX_URL` names another."""
    found: list[Gateway] = []
    if settings.sandbox:
        found.append(SandboxGateway(session, settings.sandbox_url or f"{self_url}/sandbox",
                                    settings.sandbox_api_key, settings.sandbox_webhook_secrets))
    return Gateways(found)
