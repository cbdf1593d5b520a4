"""Availability shown to buyers, folded into catalog answers.

Until inventory is loaded into Redis, a package's availability is its capacity less what has
been sold; `sale_state` follows the sale window at the current time.
"""

from __future__ import annotations

from datetime import datetime, timezone

import msgspec
from aiohttp import web

from engine import catalog_types as t
from engine.catalog import sale_state


async def with_availability(app: web.Application, detail: t.EventDetail,
                            now: datetime | None = None) -> t.EventDetail:
    now = now or datetime.now(timezone.utc)
    packages = []
    for pkg in detail.packages:
        pkg = msgspec.structs.replace(pkg, available=pkg.capacity)
        packages.append(msgspec.structs.replace(pkg, sale_state=sale_state(pkg, now)))
    return msgspec.structs.replace(
        detail, packages=packages, available=sum(p.available for p in packages if p.is_active))
