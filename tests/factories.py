"""Test data through the public API, so tests exercise the same paths users do."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from storefront.appkeys import ACCOUNTS

_seq = itertools.count(1)
PASSWORD = "correct horse battery"


@dataclass
class Actor:
    """A user with an API token; `h` are the headers to act as them."""

    user: dict[str, Any]
    token: str

    @property
    def h(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def future(days: float = 30, hours: float = 0) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days, hours=hours)).replace(microsecond=0)


class Factory:
    def __init__(self, client: TestClient):
        self.client = client

    async def user(self, role: str = "buyer", verified: bool = True, **extra: Any) -> Actor:
        n = next(_seq)
        body = {"email": f"user{n}@example.test", "name": f"User {n}", "password": PASSWORD,
                "account_type": "provider" if role == "provider" else "buyer", **extra}
        if role == "provider":
            body.setdefault("business_name", f"Promoter {n}")
        resp = await self.client.post("/api/auth/register", json=body)
        assert resp.status == 201, await resp.text()
        user = await resp.json()
        accounts = self.client.server.app[ACCOUNTS]
        if role in ("staff", "admin"):
            await accounts.pool.execute("UPDATE users SET role = $2 WHERE id = $1", user["id"], role)
        if role == "provider" and verified:
            await accounts.set_provider_status(user["provider_id"], "verified")
        token = await accounts.create_token(user["id"], "tests")
        user = await (await self.client.get("/api/auth/me", headers={
            "Authorization": f"Bearer {token.token}"})).json()
        return Actor(user=user, token=token.token)

    async def event(self, provider: Actor, **fields: Any) -> dict[str, Any]:
        n = next(_seq)
        starts = fields.pop("starts_at", future(30))
        body = {"title": f"Event {n}", "starts_at": starts.isoformat(),
                "ends_at": fields.pop("ends_at", starts + timedelta(hours=4)).isoformat(), **fields}
        resp = await self.client.post("/api/provider/events", json=body, headers=provider.h)
        assert resp.status == 201, await resp.text()
        return await resp.json()

    async def package(self, provider: Actor, event_id: int, **fields: Any) -> dict[str, Any]:
        n = next(_seq)
        body = {"name": f"Tier {n}", "price": 500_000, "capacity": 100, **fields}
        for k in ("opens_at", "closes_at"):
            if isinstance(body.get(k), datetime):
                body[k] = body[k].isoformat()
        resp = await self.client.post(f"/api/provider/events/{event_id}/packages", json=body,
                                      headers=provider.h)
        assert resp.status == 201, await resp.text()
        return await resp.json()

    async def published_event(self, provider: Actor, packages: int = 1, **fields: Any) -> dict[str, Any]:
        event = await self.event(provider, **fields)
        for _ in range(packages):
            await self.package(provider, event["id"])
        resp = await self.client.post(f"/api/provider/events/{event['id']}/publish", headers=provider.h)
        assert resp.status == 200, await resp.text()
        return await resp.json()

    async def section(self, provider: Actor, event_id: int, package_id: int, **fields: Any) -> dict[str, Any]:
        """A section of a seated event (grid of 2 rows x 5 seats unless told otherwise)."""
        n = next(_seq)
        body = {"name": f"Section {n}", "package_id": package_id, "rows": 2, "seats_per_row": 5,
                **fields}
        resp = await self.client.post(f"/api/provider/events/{event_id}/sections", json=body,
                                      headers=provider.h)
        assert resp.status == 201, await resp.text()
        return await resp.json()
