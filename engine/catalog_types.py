"""The catalog's types: what providers send, what buyers see. msgspec Structs, used by the store,
the JSON API and the OpenAPI description alike, so the three cannot drift apart.

Money is in minor units (tambala for MWK, cents for USD) as integers; times are timezone-aware.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from engine.inputs import ONE_LINE

EventStatus = Literal["draft", "published", "cancelled", "postponed", "completed"]
NumberingType = Literal["sequential", "grid", "custom"]
SeatStatus = Literal["available", "reserved", "sold", "blocked"]
SortKey = Literal["date", "popularity", "price"]

# titles, names and places are one line without controls or direction overrides (engine/inputs.py)
Title = Annotated[str, Meta(min_length=1, max_length=200, pattern=ONE_LINE)]
Name = Annotated[str, Meta(min_length=1, max_length=100, pattern=ONE_LINE)]
# `$(?!\n)`: Python's `$` also matches before a final line feed, which these must not end with
Slug = Annotated[str, Meta(min_length=1, max_length=120, pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$(?!\n)")]
ShortText = Annotated[str, Meta(max_length=200, pattern=ONE_LINE)]
LongText = Annotated[str, Meta(max_length=20_000)]
Category = Annotated[str, Meta(min_length=1, max_length=50, pattern=r"^[a-z0-9-]+$(?!\n)")]
Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$(?!\n)")]
Latitude = Annotated[float, Meta(ge=-90, le=90)]
Longitude = Annotated[float, Meta(ge=-180, le=180)]
Url = Annotated[str, Meta(max_length=2000, pattern=r"^https?://\S+$(?!\n)")]
Money = Annotated[int, Meta(ge=0, le=10**12)]
Capacity = Annotated[int, Meta(ge=0, le=1_000_000)]
PerOrder = Annotated[int, Meta(ge=1, le=1000)]
# tickets one buyer may hold and buy in one event, all packages together
BuyerCap = Annotated[int, Meta(ge=1, le=1000)]
SortOrder = Annotated[int, Meta(ge=-10_000, le=10_000)]
Id = Annotated[int, Meta(ge=1, le=2**62)]
Modifier = Annotated[int, Meta(ge=-(10**9), le=10**9)]
# times sent by callers must carry an offset: a naive time is ambiguous and refused (422)
AwareDatetime = Annotated[datetime, Meta(tz=True)]
# an IANA zone name; the catalog checks it names a real zone
TimeZone = Annotated[str, Meta(min_length=1, max_length=64)]


class Input(Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of request bodies: unknown fields are refused, not ignored."""


# --- provider input ---------------------------------------------------------------------------
class EventCreate(Input):
    title: Title
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    slug: Slug | None = None
    description: LongText = ""
    category: Category = "other"
    venue: ShortText = ""
    address: ShortText = ""
    city: ShortText = ""
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    timezone: TimeZone = "Africa/Blantyre"
    cover_image_url: Url | None = None
    requires_seating: bool = False
    allow_guest_checkout: bool = True
    uses_waiting_room: bool = False
    currency: Currency = "MWK"
    max_tickets_per_buyer: BuyerCap = 10
    service_fee: Money = 0  # per ticket, minor units, shown before paying


class EventUpdate(Input):
    title: Title | UnsetType = UNSET
    slug: Slug | UnsetType = UNSET
    description: LongText | UnsetType = UNSET
    category: Category | UnsetType = UNSET
    venue: ShortText | UnsetType = UNSET
    address: ShortText | UnsetType = UNSET
    city: ShortText | UnsetType = UNSET
    latitude: Latitude | None | UnsetType = UNSET
    longitude: Longitude | None | UnsetType = UNSET
    starts_at: AwareDatetime | UnsetType = UNSET
    ends_at: AwareDatetime | UnsetType = UNSET
    timezone: TimeZone | UnsetType = UNSET
    cover_image_url: Url | None | UnsetType = UNSET
    requires_seating: bool | UnsetType = UNSET
    allow_guest_checkout: bool | UnsetType = UNSET
    uses_waiting_room: bool | UnsetType = UNSET
    currency: Currency | UnsetType = UNSET
    max_tickets_per_buyer: BuyerCap | UnsetType = UNSET
    service_fee: Money | UnsetType = UNSET


class Postpone(Input):
    """New dates are optional: a postponement may be announced before the new date is known."""

    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None


class PackageCreate(Input):
    name: Name
    price: Money
    capacity: Capacity
    description: Annotated[str, Meta(max_length=2000)] = ""
    min_per_order: PerOrder = 1
    max_per_order: PerOrder = 10
    per_buyer_limit: PerOrder | None = None
    opens_at: AwareDatetime | None = None
    closes_at: AwareDatetime | None = None
    sort_order: SortOrder = 0


class PackageUpdate(Input):
    name: Name | UnsetType = UNSET
    price: Money | UnsetType = UNSET
    capacity: Capacity | UnsetType = UNSET
    description: Annotated[str, Meta(max_length=2000)] | UnsetType = UNSET
    min_per_order: PerOrder | UnsetType = UNSET
    max_per_order: PerOrder | UnsetType = UNSET
    per_buyer_limit: PerOrder | None | UnsetType = UNSET
    opens_at: AwareDatetime | None | UnsetType = UNSET
    closes_at: AwareDatetime | None | UnsetType = UNSET
    sort_order: SortOrder | UnsetType = UNSET
    is_active: bool | UnsetType = UNSET


class CustomSeat(Input):
    seat_number: Annotated[str, Meta(min_length=1, max_length=20, pattern=ONE_LINE)]
    row: Annotated[str, Meta(max_length=10, pattern=ONE_LINE)] | None = None
    price_modifier: Modifier = 0


class SectionCreate(Input):
    """A section and its generated seats.

    `grid`: rows lettered A, B, … Z, AA, … and seats `A1`, `A2`, …; `sequential`: seats numbered
    1..rows*seats_per_row across rows; `custom`: the seats listed in `custom_seats`.
    Seat prices are the package price plus each seat's modifier (row modifiers apply by row).
    """

    name: Name
    package_id: Id
    numbering_type: NumberingType = "grid"
    rows: Annotated[int, Meta(ge=0, le=200)] = 0
    seats_per_row: Annotated[int, Meta(ge=0, le=500)] = 0
    custom_seats: Annotated[list[CustomSeat], Meta(max_length=20_000)] = []
    row_price_modifiers: dict[str, Modifier] = {}
    sort_order: SortOrder = 0


class SeatBlock(Input):
    seat_ids: Annotated[list[Id], Meta(min_length=1, max_length=5000)]
    blocked: bool = True


class SeatBlockResult(Struct, kw_only=True):
    changed: list[int]


# --- output -----------------------------------------------------------------------------------
class Package(Struct, kw_only=True):
    id: int
    event_id: int
    name: str
    description: str
    price: int
    capacity: int
    min_per_order: int
    max_per_order: int
    per_buyer_limit: int | None
    opens_at: datetime | None
    closes_at: datetime | None
    sort_order: int
    is_active: bool
    available: int = 0
    # paused / closed: the whole event is (postponed; cancelled, completed or not on sale)
    sale_state: Literal["upcoming", "on_sale", "paused", "closed", "sold_out"] = "on_sale"


class Event(Struct, kw_only=True):
    id: int
    provider_id: int
    slug: str
    title: str
    description: str
    category: str
    venue: str
    address: str
    city: str
    latitude: float | None
    longitude: float | None
    starts_at: datetime
    ends_at: datetime
    timezone: str
    cover_image_url: str | None
    status: EventStatus
    requires_seating: bool
    allow_guest_checkout: bool
    uses_waiting_room: bool
    currency: str
    max_tickets_per_buyer: int
    service_fee: int
    tickets_sold: int
    published_at: datetime | None
    created_at: datetime
    updated_at: datetime


class SectionPrices(Struct, kw_only=True):
    """A section of a seated event and what its seats cost (engine/prices.py)."""

    id: int
    name: str
    package_id: int
    capacity: int
    price_min: int
    price_max: int


class EventDetail(Event, kw_only=True):
    """An event with its packages; price_min / price_max include seat prices."""

    packages: list[Package] = []
    sections: list[SectionPrices] = []  # seated events: the price range of each section
    # whether it sells right now, from the live inventory (catalog_rules.event_sale_status)
    sale_status: Literal["on_sale", "paused", "closed"] = "closed"
    price_min: int | None = None
    price_max: int | None = None
    available: int = 0
    provider_name: str = ""


class EventSummary(Struct, kw_only=True):
    id: int
    slug: str
    title: str
    category: str
    venue: str
    city: str
    starts_at: datetime
    ends_at: datetime
    timezone: str
    cover_image_url: str | None
    status: EventStatus
    currency: str
    requires_seating: bool
    price_min: int | None
    price_max: int | None
    tickets_sold: int
    available: int  # tickets left in the active packages (live once the event is on sale)
    package_ids: list[int] = []  # the active packages


class EventPage(Struct, kw_only=True):
    items: list[EventSummary]
    total: int
    page: int
    per_page: int
    pages: int


class EventQuery(Input):
    """Filters of `GET /api/events`; everything is optional.

    `date_from` / `date_to` take a time with an offset, or a bare `YYYY-MM-DD` (what a date
    input sends), read as the start / the end of that day in UTC (see `DAY_BOUNDS`).
    """

    DAY_BOUNDS: ClassVar[dict[str, str]] = {"date_from": "T00:00:00Z", "date_to": "T23:59:59.999999Z"}

    q: Annotated[str, Meta(max_length=200)] | None = None
    category: Category | None = None
    date_from: AwareDatetime | None = None
    date_to: AwareDatetime | None = None
    city: Annotated[str, Meta(max_length=100)] | None = None
    lat: Latitude | None = None
    lng: Longitude | None = None
    radius_km: Annotated[float, Meta(gt=0, le=20_000)] = 50.0
    sort: SortKey = "date"
    order: Literal["asc", "desc"] | None = None
    page: Annotated[int, Meta(ge=1, le=10_000)] = 1
    per_page: Annotated[int, Meta(ge=1, le=100)] = 12


class AdminEventQuery(EventQuery):
    """The public search's filters over every status (admins), or over one `status`."""

    status: EventStatus | None = None


class Seat(Struct, kw_only=True):
    id: int
    seat_number: str
    row: str | None
    column: int | None
    status: SeatStatus
    price: int


class SeatLabel(Struct, kw_only=True):
    """A seat as a buyer reads it: section, row (when numbered by row) and seat number."""

    section: str
    row: str | None
    seat: str


class Section(Struct, kw_only=True):
    id: int
    name: str
    package_id: int | None
    capacity: int
    row_count: int | None
    seat_numbering_type: NumberingType
    sort_order: int
    seats: list[Seat] = []


class SeatMap(Struct, kw_only=True):
    event_id: int
    currency: str
    sections: list[Section]


def to_builtins(obj: Struct) -> dict:
    """A Struct as a plain dict (UNSET fields dropped): for templates and SQL updates."""
    return msgspec.to_builtins(obj)
