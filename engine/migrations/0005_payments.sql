-- Checkout and payments: a per-ticket service fee per event, the payments taken (one row per
-- attempt that reached a gateway's answer) and the raw webhook log, unique per gateway event id.

ALTER TABLE events ADD COLUMN service_fee bigint NOT NULL DEFAULT 0
    CONSTRAINT events_service_fee_check CHECK (service_fee >= 0);

CREATE TABLE payments (
    id             bigserial PRIMARY KEY,
    reference      text NOT NULL CONSTRAINT payments_reference_key UNIQUE,  -- ours, per attempt
    gateway        text NOT NULL,
    gateway_ref    text,
    order_number   text NOT NULL,
    event_id       bigint REFERENCES events (id) ON DELETE RESTRICT,  -- null: order unknown
    hold_id        text,
    buyer          text,
    method         text,
    amount         bigint NOT NULL CONSTRAINT payments_amount_check CHECK (amount >= 0),
    currency       char(3) NOT NULL,
    state          text NOT NULL CONSTRAINT payments_state_check
        CHECK (state IN ('pending', 'succeeded', 'failed', 'refund_due', 'refunding', 'refunded')),
    reason         text,            -- why it failed, or why it is to be refunded
    sale           jsonb,           -- what a succeeded payment bought (engine.orders.SaleRecord):
                                    -- the record a sale Redis lost is made again from
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    succeeded_at   timestamptz
);
-- the second guard against taking money twice: one succeeded payment per order
CREATE UNIQUE INDEX payments_one_success_per_order ON payments (order_number) WHERE state = 'succeeded';
CREATE INDEX payments_order_idx ON payments (order_number);
CREATE INDEX payments_state_idx ON payments (state) WHERE state IN ('pending', 'refund_due', 'refunding');

CREATE TABLE payment_events (
    id           bigserial PRIMARY KEY,
    gateway      text NOT NULL,
    event_id     text NOT NULL,
    reference    text,
    state        text,
    body         bytea NOT NULL,    -- the raw body as received (verified)
    received_at  timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz,
    outcome      text,
    CONSTRAINT payment_events_gateway_event_key UNIQUE (gateway, event_id)
);
CREATE INDEX payment_events_reference_idx ON payment_events (reference);
