"""The catalog store: events, ticket packages, sections and seats in Postgres.

Providers see and change only their own events (another's answers as missing), and every write
checks the provider's standing in the same transaction (`catalog_rules.check_standing`: pending
providers work on drafts only, suspended and rejected ones change nothing); the lifecycle moves
only along `TRANSITIONS`. Queries are parameterised; list filters are built from fixed SQL
fragments with numbered parameters, never from input text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Protocol

import asyncpg
import msgspec
from msgspec import UNSET

from engine import catalog_types as t
from engine.catalog_rules import (
    PUBLIC_STATUSES,
    check_dates,
    check_order_limits,
    check_position,
    check_standing,
    check_timezone,
    check_transition,
    check_window,
    generate_seats,
    slugify,
)
from engine.errors import Conflict, Invalid, InvalidTransition, NotFound
from engine.prices import event_range, section_prices
from engine.search import categories, search_events

_EVENT_COLUMNS = ", ".join(f for f in t.Event.__struct_fields__)
_PACKAGE_COLUMNS = ", ".join(f for f in t.Package.__struct_fields__ if f not in ("available", "sale_state"))

# event fields the stock in Redis carries: a change to one is loaded like a package change
_SALE_FIELDS = frozenset({"allow_guest_checkout", "max_tickets_per_buyer"})


def _set_fields(patch: msgspec.Struct) -> dict[str, Any]:
    return {
        f: getattr(patch, f) for f in patch.__struct_fields__ if getattr(patch, f) is not UNSET
    }


class StockHook(Protocol):
    """What the catalog tells the on-sale stock (engine/onsale.py) about its changes."""

    async def narrow(self, conn: asyncpg.Connection, event_id: int, version: int) -> None:
        """Inside the change's transaction, before its commit: take off sale what the change
        takes off; refuse (raise) what cannot be done, which rolls the change back."""

    async def settle(self, event_id: int) -> None:
        """After the commit: load the committed catalog in full (never raises)."""


class Catalog:
    """Reads and writes the catalog. One instance per pool; methods take the acting provider.

    Every write that changes what is on sale (status, guests, buyer cap, packages, sections,
    seats) bumps the event's `catalog_version` under the event's row lock and calls
    `stock.narrow` inside its transaction, then `stock.settle` after the commit. Whatever fails
    (Redis, the commit, the process between the two), the stock on sale never exceeds what
    Postgres committed, and reconciliation (engine/onsale.py) finds the event by its version.
    Writers of one event are serialised by the row lock, so no stale copy overwrites a newer.
    """

    def __init__(self, pool: asyncpg.Pool, stock: StockHook | None = None):
        self.pool = pool
        self.stock = stock
        self._touched: dict[int, list[int]] = {}  # id(conn) -> events changed in its transaction

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[asyncpg.Connection]:
        """A write transaction; the events it changed are settled after it commits."""
        async with self.pool.acquire() as conn:
            touched = self._touched[id(conn)] = []
            try:
                async with conn.transaction():
                    yield conn
            finally:
                del self._touched[id(conn)]
        if self.stock is not None:
            for event_id in dict.fromkeys(touched):
                await self.stock.settle(event_id)

    async def _changed(self, conn: asyncpg.Connection, event_id: int) -> None:
        """Record a change that matters to the sale (the event row is locked by the caller)."""
        version = await conn.fetchval("UPDATE events SET catalog_version = catalog_version + 1 "
                                      "WHERE id = $1 RETURNING catalog_version", event_id)
        self._touched[id(conn)].append(event_id)
        if self.stock is not None:
            await self.stock.narrow(conn, event_id, version)

    # --- events -------------------------------------------------------------------------------
    async def create_event(self, provider_id: int, data: t.EventCreate) -> t.Event:
        """A new draft event of `provider_id` (refused unless the provider is verified or pending)."""
        check_dates(data.starts_at, data.ends_at)
        check_timezone(data.timezone)
        check_position(data.latitude, data.longitude)
        fields = msgspec.structs.asdict(data)
        explicit_slug = fields.pop("slug")
        base = explicit_slug or slugify(data.title)
        columns = ["provider_id", "slug", *fields]
        sql = (
            f"INSERT INTO events ({', '.join(columns)}) "
            f"VALUES ({', '.join(f'${i}' for i in range(1, len(columns) + 1))}) "
            f"RETURNING {_EVENT_COLUMNS}"
        )
        async with self.pool.acquire() as conn, conn.transaction():
            await self._check_standing(conn, provider_id, None)
            for attempt in range(1, 50):
                slug = base if attempt == 1 else f"{base}-{attempt}"
                try:
                    async with conn.transaction():  # a savepoint: a taken slug tries the next
                        row = await conn.fetchrow(sql, provider_id, slug, *fields.values())
                    return _event(row)
                except asyncpg.UniqueViolationError as exc:
                    if exc.constraint_name != "events_slug_key":
                        raise
                    if explicit_slug:
                        raise Conflict(f"the slug {slug!r} is taken", code="slug_taken",
                                       fields={"slug": "already in use"}) from None
        raise Conflict("could not find a free slug; choose one", code="slug_taken")

    async def update_event(self, owner: int | None, event_id: int, patch: t.EventUpdate) -> t.Event:
        changes = _set_fields(patch)
        async with self._write() as conn:
            current = await self._owned_event(conn, owner, event_id, write=True)
            if not changes:
                return current
            if current.status in ("cancelled", "completed"):
                raise InvalidTransition(f"a {current.status} event can no longer be edited")
            if "slug" in changes and current.status != "draft" and changes["slug"] != current.slug:
                raise Invalid("the slug is fixed once an event is published; links point at it",
                              fields={"slug": "fixed after publishing"})
            if "currency" in changes and current.status != "draft" and changes["currency"] != current.currency:
                raise Invalid("the currency is fixed once an event is published; prices were "
                              "shown and held in it", fields={"currency": "fixed after publishing"})
            if "requires_seating" in changes and current.status != "draft":
                raise Invalid("seating can only be switched on or off while the event is a draft",
                              fields={"requires_seating": "fixed after publishing"})
            check_dates(changes.get("starts_at", current.starts_at),
                         changes.get("ends_at", current.ends_at))
            if "timezone" in changes:
                check_timezone(changes["timezone"])
            check_position(changes.get("latitude", current.latitude),
                            changes.get("longitude", current.longitude))
            assignments = ", ".join(f"{col} = ${i}" for i, col in enumerate(changes, start=2))
            try:
                row = await conn.fetchrow(
                    f"UPDATE events SET {assignments}, updated_at = now() WHERE id = $1 "
                    f"RETURNING {_EVENT_COLUMNS}",
                    event_id, *changes.values(),
                )
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name == "events_slug_key":
                    raise Conflict("that slug is taken", code="slug_taken",
                                   fields={"slug": "already in use"}) from None
                raise
            if current.status != "draft" and changes.keys() & _SALE_FIELDS:
                await self._changed(conn, event_id)
            return _event(row)

    async def transition(
        self, owner: int | None, event_id: int, target: str,
        starts_at: datetime | None = None, ends_at: datetime | None = None,
    ) -> t.Event:
        """Move an event along its lifecycle; publishing checks the event can be sold."""
        async with self._write() as conn:
            current = await self._owned_event(conn, owner, event_id, write=True, target=target)
            check_transition(current.status, target)
            new_start = starts_at or current.starts_at
            new_end = ends_at or current.ends_at
            if starts_at and not ends_at:
                new_end = starts_at + (current.ends_at - current.starts_at)
            check_dates(new_start, new_end)
            if target == "published":
                await self._check_publishable(conn, current)
            row = await conn.fetchrow(
                f"""UPDATE events SET status = $2, starts_at = $3, ends_at = $4,
                       published_at = CASE WHEN $2 = 'published' THEN coalesce(published_at, now())
                                           ELSE published_at END,
                       updated_at = now()
                    WHERE id = $1 RETURNING {_EVENT_COLUMNS}""",
                event_id, target, new_start, new_end,
            )
            await self._changed(conn, event_id)
            return _event(row)

    async def _check_publishable(self, conn: asyncpg.Connection, event: t.Event) -> None:
        packages = await conn.fetchval(
            "SELECT count(*) FROM ticket_packages WHERE event_id = $1 AND is_active", event.id
        )
        if not packages:
            raise Invalid("add at least one active ticket package before publishing",
                          code="not_publishable")
        if event.requires_seating:
            seats = await conn.fetchval(
                "SELECT count(*) FROM seats s JOIN sections c ON c.id = s.section_id "
                "WHERE c.event_id = $1", event.id)
            if not seats:
                raise Invalid("a seated event needs at least one section with seats",
                              code="not_publishable")

    async def _owned_event(
        self, conn: asyncpg.Connection, owner: int | None, event_id: int, *,
        write: bool = False, target: str | None = None,
    ) -> t.Event:
        """The event, when `owner` (a provider id; None for admins) may see it, or with `write`
        change it: the row is then locked and the provider's standing checked (`check_standing`;
        `target` is where a lifecycle move goes).

        Another provider's event gets the same NotFound as a missing one, so ids cannot be probed.
        """
        lock = " FOR UPDATE" if write else ""
        row = await conn.fetchrow(f"SELECT {_EVENT_COLUMNS} FROM events WHERE id = $1{lock}", event_id)
        if row is None or (owner is not None and row["provider_id"] != owner):
            raise NotFound(f"no event with id {event_id}")
        if write and owner is not None:
            await self._check_standing(conn, owner, row["status"], target)
        return _event(row)

    @staticmethod
    async def _check_standing(conn: asyncpg.Connection, provider_id: int,
                              event_status: str | None, target: str | None = None) -> None:
        # FOR SHARE: a suspension waits for writes already under way, and every write after it
        # sees it (the identity cache is not trusted for this)
        standing = await conn.fetchval(
            "SELECT verification_status FROM service_providers WHERE id = $1 FOR SHARE", provider_id)
        check_standing(standing or "suspended", event_status, target)

    async def provider_event(self, owner: int | None, event_id: int) -> t.EventDetail:
        async with self.pool.acquire() as conn:
            await self._owned_event(conn, owner, event_id)
        detail = await self.event_detail(event_id=event_id, public_only=False)
        assert detail is not None
        return detail

    async def provider_events(self, owner: int) -> list[t.Event]:
        rows = await self.pool.fetch(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE provider_id = $1 ORDER BY starts_at", owner)
        return [_event(r) for r in rows]

    # --- packages -----------------------------------------------------------------------------
    async def create_package(self, owner: int | None, event_id: int, data: t.PackageCreate) -> t.Package:
        fields = msgspec.structs.asdict(data)
        async with self._write() as conn:
            # ownership first: another provider learns nothing from their input being checked
            event = await self._owned_event(conn, owner, event_id, write=True)
            check_window(data.opens_at, data.closes_at)
            check_order_limits(data.min_per_order, data.max_per_order)
            if event.status in ("cancelled", "completed"):
                raise InvalidTransition(f"a {event.status} event takes no new packages")
            columns = ["event_id", *fields]
            try:
                row = await conn.fetchrow(
                    f"INSERT INTO ticket_packages ({', '.join(columns)}) VALUES "
                    f"({', '.join(f'${i}' for i in range(1, len(columns) + 1))}) "
                    f"RETURNING {_PACKAGE_COLUMNS}",
                    event_id, *fields.values(),
                )
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name == "ticket_packages_name_key":
                    raise Conflict(f"this event already has a package named {data.name!r}",
                                   code="package_name_taken", fields={"name": "already used"}) from None
                raise
            await self._changed(conn, event_id)
            return _package(row)

    async def update_package(
        self, owner: int | None, event_id: int, package_id: int, patch: t.PackageUpdate,
    ) -> t.Package:
        """Change a package (a capacity below what is held + sold is refused by `on_change`)."""
        changes = _set_fields(patch)
        async with self._write() as conn:
            await self._owned_event(conn, owner, event_id, write=True)
            row = await conn.fetchrow(
                f"SELECT {_PACKAGE_COLUMNS} FROM ticket_packages WHERE id = $1 AND event_id = $2 "
                "FOR UPDATE", package_id, event_id)
            if row is None:
                raise NotFound(f"event {event_id} has no package {package_id}")
            current = _package(row)
            if not changes:
                return current
            check_window(changes.get("opens_at", current.opens_at),
                          changes.get("closes_at", current.closes_at))
            check_order_limits(changes.get("min_per_order", current.min_per_order),
                                changes.get("max_per_order", current.max_per_order))
            assignments = ", ".join(f"{col} = ${i}" for i, col in enumerate(changes, start=2))
            try:
                row = await conn.fetchrow(
                    f"UPDATE ticket_packages SET {assignments}, updated_at = now() WHERE id = $1 "
                    f"RETURNING {_PACKAGE_COLUMNS}", package_id, *changes.values())
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name == "ticket_packages_name_key":
                    raise Conflict("this event already has a package with that name",
                                   code="package_name_taken", fields={"name": "already used"}) from None
                raise
            await self._changed(conn, event_id)
            return _package(row)

    async def packages(self, event_id: int, conn: Any = None) -> list[t.Package]:
        rows = await (conn or self.pool).fetch(
            f"SELECT {_PACKAGE_COLUMNS} FROM ticket_packages WHERE event_id = $1 "
            "ORDER BY sort_order, id", event_id)
        return [_package(r) for r in rows]

    # --- sections and seats ------------------------------------------------------------------
    async def create_section(self, owner: int | None, event_id: int, data: t.SectionCreate) -> t.Section:
        seats = generate_seats(data)
        async with self._write() as conn:
            event = await self._owned_event(conn, owner, event_id, write=True)
            if not seats:
                raise Invalid("a section needs seats: give rows and seats_per_row, or custom_seats",
                              fields={"rows": "no seats to generate"})
            if not event.requires_seating:
                raise Invalid("this event is not seated; set requires_seating while it is a draft",
                              code="not_seated")
            if event.status not in ("draft", "published", "postponed"):
                raise InvalidTransition(f"a {event.status} event takes no new sections")
            owns = await conn.fetchval(
                "SELECT 1 FROM ticket_packages WHERE id = $1 AND event_id = $2", data.package_id, event_id)
            if not owns:
                raise Invalid(f"package {data.package_id} is not a package of this event",
                              fields={"package_id": "not a package of this event"})
            row_count = len({s[1] for s in seats if s[1] is not None}) or None
            try:
                section_id = await conn.fetchval(
                    "INSERT INTO sections (event_id, package_id, name, capacity, row_count, "
                    "seat_numbering_type, sort_order) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                    event_id, data.package_id, data.name, len(seats), row_count,
                    data.numbering_type, data.sort_order)
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name == "sections_name_key":
                    raise Conflict(f"this event already has a section named {data.name!r}",
                                   code="section_name_taken", fields={"name": "already used"}) from None
                raise
            try:
                await conn.copy_records_to_table(
                    "seats", columns=["section_id", "seat_number", "row", "column", "price_modifier"],
                    records=[(section_id, *seat) for seat in seats])
            except asyncpg.UniqueViolationError:
                raise Invalid("custom seat numbers must be unique within a section",
                              fields={"custom_seats": "duplicate seat_number"}) from None
            await self._changed(conn, event_id)
        seat_map = await self.seat_map(event_id, section_ids=[section_id])
        return seat_map.sections[0]

    async def block_seats(self, owner: int | None, event_id: int, data: t.SeatBlock) -> list[int]:
        """Block (or unblock) available seats; returns the seat ids changed. A seat held or sold
        in the live sale refuses the block (the stock's `narrow` raises) and nothing changes;
        unblocked seats go back on sale once the change is committed."""
        wanted = set(data.seat_ids)
        src, dst = ("available", "blocked") if data.blocked else ("blocked", "available")
        async with self._write() as conn:
            await self._owned_event(conn, owner, event_id, write=True)
            if len(wanted) != len(data.seat_ids):
                raise Invalid("seat_ids lists a seat twice", fields={"seat_ids": "duplicates"})
            rows = await conn.fetch(
                "SELECT s.id, s.status FROM seats s JOIN sections c ON c.id = s.section_id "
                "WHERE c.event_id = $1 AND s.id = ANY($2::bigint[]) FOR UPDATE OF s",
                event_id, list(wanted))
            found = {r["id"]: r["status"] for r in rows}
            missing = sorted(wanted - found.keys())
            if missing:
                raise NotFound(f"seats not in this event: {missing[:20]}",
                               fields={"seat_ids": "unknown seats"})
            wrong = sorted(i for i, s in found.items() if s not in (src, dst))
            if wrong:
                raise Conflict(f"seats {wrong[:20]} are reserved or sold and cannot be "
                               f"{'blocked' if data.blocked else 'unblocked'}", code="seat_unavailable")
            changed = await conn.fetch(
                "UPDATE seats SET status = $2 WHERE id = ANY($1::bigint[]) AND status = $3 RETURNING id",
                list(wanted), dst, src)
            ids = sorted(r["id"] for r in changed)
            if ids:
                await self._changed(conn, event_id)
            return ids

    async def seat_map(self, event_id: int, section_ids: Iterable[int] | None = None,
                       conn: Any = None) -> t.SeatMap:
        db = conn or self.pool
        currency = await db.fetchval("SELECT currency FROM events WHERE id = $1", event_id)
        if currency is None:
            raise NotFound(f"no event with id {event_id}")
        ids = list(section_ids) if section_ids is not None else None
        sections = await db.fetch(
            "SELECT c.id, c.name, c.package_id, c.capacity, c.row_count, c.seat_numbering_type, "
            "c.sort_order, coalesce(p.price, 0) AS base_price FROM sections c "
            "LEFT JOIN ticket_packages p ON p.id = c.package_id WHERE c.event_id = $1 "
            "AND ($2::bigint[] IS NULL OR c.id = ANY($2::bigint[])) ORDER BY c.sort_order, c.id",
            event_id, ids)
        seats = await db.fetch(
            "SELECT s.id, s.section_id, s.seat_number, s.row, s.column, s.status, s.price_modifier "
            "FROM seats s JOIN sections c ON c.id = s.section_id WHERE c.event_id = $1 "
            "AND ($2::bigint[] IS NULL OR c.id = ANY($2::bigint[])) ORDER BY s.id", event_id, ids)
        by_section: dict[int, list[t.Seat]] = {}
        base = {s["id"]: s["base_price"] for s in sections}
        for s in seats:
            by_section.setdefault(s["section_id"], []).append(t.Seat(
                id=s["id"], seat_number=s["seat_number"], row=s["row"], column=s["column"],
                status=s["status"], price=max(0, base[s["section_id"]] + s["price_modifier"])))
        return t.SeatMap(event_id=event_id, currency=currency.strip(), sections=[
            t.Section(id=c["id"], name=c["name"], package_id=c["package_id"], capacity=c["capacity"],
                      row_count=c["row_count"], seat_numbering_type=c["seat_numbering_type"],
                      sort_order=c["sort_order"], seats=by_section.get(c["id"], []))
            for c in sections])

    async def seat_labels(self, event_id: int, seat_ids: Iterable[int]) -> dict[int, t.SeatLabel]:
        """Where each of `seat_ids` is, in words people read on a ticket (seats of `event_id` only)."""
        ids = list(seat_ids)
        if not ids:
            return {}
        rows = await self.pool.fetch(
            "SELECT s.id, c.name AS section, s.row, s.seat_number FROM seats s "
            "JOIN sections c ON c.id = s.section_id WHERE c.event_id = $1 AND s.id = ANY($2::bigint[])",
            event_id, ids)
        return {r["id"]: t.SeatLabel(section=r["section"], row=r["row"], seat=r["seat_number"])
                for r in rows}

    # --- public reads -------------------------------------------------------------------------
    async def event_detail(
        self, *, slug: str | None = None, event_id: int | None = None, public_only: bool = True,
        conn: Any = None,
    ) -> t.EventDetail | None:
        where = "e.slug = $1" if slug is not None else "e.id = $1"
        row = await (conn or self.pool).fetchrow(
            f"SELECT e.*, sp.business_name AS provider_name FROM events e "
            f"JOIN service_providers sp ON sp.id = e.provider_id WHERE {where}",
            slug if slug is not None else event_id)
        if row is None or (public_only and row["status"] == "draft"):
            return None
        event = _event(row)
        packages = await self.packages(event.id, conn)
        if public_only:
            packages = [p for p in packages if p.is_active]
        sections = await section_prices(conn or self.pool, event.id, [p.id for p in packages])
        price_min, price_max = event_range(packages, sections)
        return t.EventDetail(
            **msgspec.structs.asdict(event), packages=packages, sections=sections,
            price_min=price_min, price_max=price_max, provider_name=row["provider_name"])

    async def search(self, query: t.EventQuery, now: datetime | None = None,
                     statuses: tuple[str, ...] = PUBLIC_STATUSES) -> t.EventPage:
        """Events in `statuses` (the public ones unless told) matching `query` (engine/search.py)."""
        return await search_events(self.pool, query, now, statuses)

    async def categories(self) -> list[str]:
        return await categories(self.pool)


def _event(row: asyncpg.Record) -> t.Event:
    data = {f: row[f] for f in t.Event.__struct_fields__}
    data["currency"] = data["currency"].strip()
    return t.Event(**data)


def _package(row: asyncpg.Record) -> t.Package:
    return t.Package(**{f: row[f] for f in t.Package.__struct_fields__ if f not in ("available", "sale_state")})
