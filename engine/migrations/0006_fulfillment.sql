-- Fulfillment: confirmed sales as orders and tickets in Postgres, the record of every sale.
-- The fulfillment worker writes them from the events' orders streams, idempotent on the order
-- number; a UNIQUE index makes a second valid ticket for one seat of one event impossible.

CREATE TABLE orders (
    id            bigserial PRIMARY KEY,
    order_number  text NOT NULL CONSTRAINT orders_order_number_key UNIQUE,
    event_id      bigint NOT NULL REFERENCES events (id) ON DELETE RESTRICT,
    hold_id       text NOT NULL,
    buyer         text NOT NULL,            -- u:<user id> | g:<guest id>
    user_id       bigint REFERENCES users (id) ON DELETE SET NULL,
    email         text NOT NULL,
    buyer_name    text NOT NULL,
    phone         text,
    billing       jsonb NOT NULL DEFAULT '{}',
    subtotal      bigint NOT NULL CONSTRAINT orders_subtotal_check CHECK (subtotal >= 0),
    fees          bigint NOT NULL CONSTRAINT orders_fees_check CHECK (fees >= 0),
    total         bigint NOT NULL CONSTRAINT orders_total_check CHECK (total >= 0),
    currency      char(3) NOT NULL,
    status        text NOT NULL DEFAULT 'confirmed'
        CONSTRAINT orders_status_check CHECK (status IN ('confirmed', 'refunded', 'cancelled')),
    payment_reference text,
    sold_at       timestamptz NOT NULL,     -- when Redis made the sale
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_event_idx ON orders (event_id);
CREATE INDEX orders_user_idx ON orders (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX orders_buyer_idx ON orders (buyer);

CREATE TABLE tickets (
    id             bigserial PRIMARY KEY,
    ticket_number  text NOT NULL CONSTRAINT tickets_ticket_number_key UNIQUE,
    order_id       bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    event_id       bigint NOT NULL REFERENCES events (id) ON DELETE RESTRICT,
    package_id     bigint NOT NULL REFERENCES ticket_packages (id) ON DELETE RESTRICT,
    seat_id        bigint REFERENCES seats (id) ON DELETE RESTRICT,
    price          bigint NOT NULL CONSTRAINT tickets_price_check CHECK (price >= 0),
    attendee_name  text NOT NULL,
    attendee_email text NOT NULL,
    attendee_phone text,
    status         text NOT NULL DEFAULT 'valid'
        CONSTRAINT tickets_status_check CHECK (status IN ('valid', 'used', 'cancelled', 'refunded', 'revoked')),
    generation     integer NOT NULL DEFAULT 1,  -- a transfer issues the next one; older payloads are refused
    checked_in_at  timestamptz,
    checked_in_by  text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tickets_order_idx ON tickets (order_id);
CREATE INDEX tickets_event_idx ON tickets (event_id);
-- the second guard against a double sale: one valid (or used) ticket per seat of an event
CREATE UNIQUE INDEX tickets_one_per_seat ON tickets (event_id, seat_id)
    WHERE seat_id IS NOT NULL AND status IN ('valid', 'used');

CREATE TABLE order_history (
    id         bigserial PRIMARY KEY,
    order_id   bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    ticket_id  bigint REFERENCES tickets (id) ON DELETE CASCADE,
    change     text NOT NULL,
    detail     jsonb NOT NULL DEFAULT '{}',
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_history_order_idx ON order_history (order_id);

ALTER TABLE ticket_packages ADD COLUMN sold integer NOT NULL DEFAULT 0
    CONSTRAINT ticket_packages_sold_check CHECK (sold >= 0);
