"""Demo data for `kwika up --demo`: a verified provider, an admin, a general-admission festival
with three packages (one a timed Early Bird release) and a seated concert with two sections.
Idempotent: a second run finds the demo provider and changes nothing."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from engine import catalog_types as t
from engine.accounts import Accounts, Registration
from engine.catalog import Catalog

log = logging.getLogger(__name__)

PROVIDER_EMAIL = "promoter@kwika.test"
ADMIN_EMAIL = "admin@kwika.test"
DEMO_PASSWORD = "kwika-demo-pass"


async def load_demo(catalog: Catalog, accounts: Accounts, now: datetime | None = None) -> bool:
    """Create the demo data unless it exists; True when created."""
    now = now or datetime.now(UTC)
    exists = await catalog.pool.fetchval(
        "SELECT 1 FROM users WHERE lower(email) = $1", PROVIDER_EMAIL)
    if exists:
        return False
    provider = await accounts.register(Registration(
        email=PROVIDER_EMAIL, name="Demo Promoter", password=DEMO_PASSWORD,
        account_type="provider", business_name="Kwika Demo Promotions", phone="+265999000111"))
    assert provider.provider_id is not None
    await accounts.set_provider_status(provider.provider_id, "verified")
    await accounts.register(Registration(email=ADMIN_EMAIL, name="Demo Admin",
                                         password=DEMO_PASSWORD), role="admin")
    pid = provider.provider_id
    # midnight in the events' own zone (Malawi keeps UTC+2 all year), so "hours=14" is 14:00 there
    day = now.astimezone(ZoneInfo("Africa/Blantyre")).replace(hour=0, minute=0, second=0,
                                                               microsecond=0)

    festival = await catalog.create_event(pid, t.EventCreate(
        title="Lake of Stars Festival", slug="lake-of-stars-festival", category="music",
        description="Three days of music and art on the shores of Lake Malawi.",
        venue="Sunbird Nkopola", address="Nkopola Road", city="Mangochi",
        latitude=-14.3500, longitude=35.2500,
        starts_at=day + timedelta(days=45, hours=14), ends_at=day + timedelta(days=47, hours=23),
        cover_image_url=None, uses_waiting_room=True))
    for name, price, capacity, extra in (
        ("VIP", 15_000_000, 200, {"description": "Lounge, fast-lane entry, festival pack",
                                  "max_per_order": 4, "per_buyer_limit": 4}),
        ("General Admission", 4_500_000, 5_000, {"description": "Three-day pass"}),
        ("Early Bird", 3_000_000, 500, {"description": "Three-day pass at the early price",
                                        "opens_at": day - timedelta(days=1),
                                        "closes_at": day + timedelta(days=14, hours=23,
                                                                     minutes=59),
                                        "per_buyer_limit": 2, "max_per_order": 2}),
    ):
        await catalog.create_package(pid, festival.id, t.PackageCreate(
            name=name, price=price, capacity=capacity,
            sort_order={"VIP": 1, "General Admission": 2, "Early Bird": 0}[name], **extra))
    await catalog.transition(pid, festival.id, "published")

    concert = await catalog.create_event(pid, t.EventCreate(
        title="Blantyre Symphony Night", slug="blantyre-symphony-night", category="classical",
        description="An evening of orchestral music under the stars.",
        venue="Comesa Hall", address="Victoria Avenue", city="Blantyre",
        latitude=-15.7861, longitude=35.0058,
        starts_at=day + timedelta(days=20, hours=17), ends_at=day + timedelta(days=20, hours=20),
        requires_seating=True))
    stalls = await catalog.create_package(pid, concert.id, t.PackageCreate(
        name="Stalls", price=2_500_000, capacity=200, max_per_order=8))
    balcony = await catalog.create_package(pid, concert.id, t.PackageCreate(
        name="Balcony", price=1_500_000, capacity=90, max_per_order=8))
    await catalog.create_section(pid, concert.id, t.SectionCreate(
        name="Stalls", package_id=stalls.id, numbering_type="grid", rows=10, seats_per_row=20,
        row_price_modifiers={"A": 500_000, "B": 500_000}))
    await catalog.create_section(pid, concert.id, t.SectionCreate(
        name="Balcony", package_id=balcony.id, numbering_type="sequential", rows=6, seats_per_row=15,
        sort_order=1))
    await catalog.transition(pid, concert.id, "published")
    log.info("demo data loaded: log in as %s", PROVIDER_EMAIL)
    return True
