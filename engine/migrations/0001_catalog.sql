-- Users, providers and the catalog: events, ticket packages, sections and seats.
-- Constraints guard what must never be wrong; code catches them by name.

CREATE TABLE users (
    id            bigserial PRIMARY KEY,
    email         text NOT NULL,
    name          text NOT NULL,
    phone         text,
    password_hash text NOT NULL,
    role          text NOT NULL DEFAULT 'buyer'
                  CONSTRAINT users_role_check CHECK (role IN ('buyer', 'provider', 'staff', 'admin')),
    is_active     boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE service_providers (
    id                  bigserial PRIMARY KEY,
    user_id             bigint NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    business_name       text NOT NULL,
    contact_email       text NOT NULL,
    contact_phone       text,
    verification_status text NOT NULL DEFAULT 'pending'
        CONSTRAINT service_providers_verification_check
        CHECK (verification_status IN ('pending', 'verified', 'rejected', 'suspended')),
    verified_at         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT service_providers_user_key UNIQUE (user_id)
);

CREATE TABLE api_tokens (
    id           bigserial PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL,
    token_hash   bytea NOT NULL CONSTRAINT api_tokens_hash_key UNIQUE,
    prefix       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);

CREATE TABLE events (
    id                   bigserial PRIMARY KEY,
    provider_id          bigint NOT NULL REFERENCES service_providers (id) ON DELETE RESTRICT,
    slug                 text NOT NULL CONSTRAINT events_slug_key UNIQUE,
    title                text NOT NULL,
    description          text NOT NULL DEFAULT '',
    category             text NOT NULL DEFAULT 'other',
    venue                text NOT NULL DEFAULT '',
    address              text NOT NULL DEFAULT '',
    city                 text NOT NULL DEFAULT '',
    latitude             double precision
        CONSTRAINT events_latitude_check CHECK (latitude BETWEEN -90 AND 90),
    longitude            double precision
        CONSTRAINT events_longitude_check CHECK (longitude BETWEEN -180 AND 180),
    starts_at            timestamptz NOT NULL,
    ends_at              timestamptz NOT NULL,
    timezone             text NOT NULL DEFAULT 'Africa/Blantyre',
    cover_image_url      text,
    status               text NOT NULL DEFAULT 'draft'
        CONSTRAINT events_status_check
        CHECK (status IN ('draft', 'published', 'cancelled', 'postponed', 'completed')),
    requires_seating     boolean NOT NULL DEFAULT false,
    allow_guest_checkout boolean NOT NULL DEFAULT true,
    uses_waiting_room    boolean NOT NULL DEFAULT false,
    currency             char(3) NOT NULL DEFAULT 'MWK',
    -- denormalised popularity, maintained by the fulfillment writer
    tickets_sold         integer NOT NULL DEFAULT 0 CONSTRAINT events_tickets_sold_check CHECK (tickets_sold >= 0),
    published_at         timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_ends_after_starts CHECK (ends_at > starts_at),
    CONSTRAINT events_slug_format CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$')
);
CREATE INDEX events_provider_idx ON events (provider_id);
CREATE INDEX events_listing_idx ON events (status, starts_at);
CREATE INDEX events_search_idx ON events USING gin (
    to_tsvector('simple', title || ' ' || description || ' ' || venue || ' ' || city));

CREATE TABLE ticket_packages (
    id              bigserial PRIMARY KEY,
    event_id        bigint NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    name            text NOT NULL,
    description     text NOT NULL DEFAULT '',
    price           bigint NOT NULL CONSTRAINT ticket_packages_price_check CHECK (price >= 0),
    capacity        integer NOT NULL CONSTRAINT ticket_packages_capacity_check CHECK (capacity >= 0),
    min_per_order   integer NOT NULL DEFAULT 1,
    max_per_order   integer NOT NULL DEFAULT 10,
    per_buyer_limit integer,
    opens_at        timestamptz,
    closes_at       timestamptz,
    sort_order      integer NOT NULL DEFAULT 0,
    is_active       boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ticket_packages_order_limits CHECK (min_per_order >= 1 AND max_per_order >= min_per_order),
    CONSTRAINT ticket_packages_buyer_limit CHECK (per_buyer_limit IS NULL OR per_buyer_limit >= 1),
    CONSTRAINT ticket_packages_window CHECK (opens_at IS NULL OR closes_at IS NULL OR closes_at > opens_at),
    CONSTRAINT ticket_packages_name_key UNIQUE (event_id, name)
);
CREATE INDEX ticket_packages_event_idx ON ticket_packages (event_id, sort_order);

CREATE TABLE sections (
    id                  bigserial PRIMARY KEY,
    event_id            bigint NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    package_id          bigint REFERENCES ticket_packages (id) ON DELETE SET NULL,
    name                text NOT NULL,
    capacity            integer NOT NULL DEFAULT 0 CONSTRAINT sections_capacity_check CHECK (capacity >= 0),
    row_count           integer CONSTRAINT sections_row_count_check CHECK (row_count IS NULL OR row_count >= 0),
    seat_numbering_type text NOT NULL DEFAULT 'grid'
        CONSTRAINT sections_numbering_check CHECK (seat_numbering_type IN ('sequential', 'grid', 'custom')),
    sort_order          integer NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sections_name_key UNIQUE (event_id, name)
);

CREATE TABLE seats (
    id             bigserial PRIMARY KEY,
    section_id     bigint NOT NULL REFERENCES sections (id) ON DELETE CASCADE,
    seat_number    text NOT NULL,
    "row"          text,
    "column"       integer,
    status         text NOT NULL DEFAULT 'available'
        CONSTRAINT seats_status_check CHECK (status IN ('available', 'reserved', 'sold', 'blocked')),
    reserved_until timestamptz,
    price_modifier bigint NOT NULL DEFAULT 0,
    CONSTRAINT seats_number_key UNIQUE (section_id, seat_number)
);
CREATE INDEX seats_section_idx ON seats (section_id);
