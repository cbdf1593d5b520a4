-- Check-in at the gate: who may scan (gate staff of a provider, for all or some of its events),
-- invitations to become one, and the check-in log that the gate's Redis stream is written into
-- (fulfillment/checkins.py). A log row is unique per stream entry, so an entry written twice
-- (a retry, a worker that died before it acknowledged) counts once.

CREATE TABLE gate_staff (
    id           bigserial PRIMARY KEY,
    provider_id  bigint NOT NULL REFERENCES service_providers (id) ON DELETE CASCADE,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    all_events   boolean NOT NULL DEFAULT true,
    event_ids    bigint[] NOT NULL DEFAULT '{}',   -- when not all_events
    invited_by   bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT gate_staff_one_per_provider UNIQUE (provider_id, user_id)
);
CREATE INDEX gate_staff_user_idx ON gate_staff (user_id);

CREATE TABLE gate_invites (
    id           bigserial PRIMARY KEY,
    provider_id  bigint NOT NULL REFERENCES service_providers (id) ON DELETE CASCADE,
    email        text NOT NULL,
    token_hash   bytea NOT NULL CONSTRAINT gate_invites_token_key UNIQUE,
    all_events   boolean NOT NULL DEFAULT true,
    event_ids    bigint[] NOT NULL DEFAULT '{}',
    invited_by   bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    accepted_at  timestamptz,
    accepted_by  bigint REFERENCES users (id) ON DELETE SET NULL
);
CREATE INDEX gate_invites_provider_idx ON gate_invites (provider_id);

CREATE TABLE checkins (
    id           bigserial PRIMARY KEY,
    event_id     bigint NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    entry_id     text NOT NULL,                  -- the gate stream's entry id
    ticket_number text NOT NULL,
    action       text NOT NULL CONSTRAINT checkins_action_check CHECK (action IN ('in', 'undo')),
    gate         text NOT NULL,
    by_who       text NOT NULL,                  -- u:<user id>
    at           timestamptz NOT NULL,           -- when it happened (offline: when scanned)
    offline      boolean NOT NULL DEFAULT false,
    written_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT checkins_entry_key UNIQUE (event_id, entry_id)
);
CREATE INDEX checkins_ticket_idx ON checkins (ticket_number);
CREATE INDEX checkins_event_at_idx ON checkins (event_id, at);
CREATE INDEX tickets_attendee_search_idx ON tickets (event_id, lower(attendee_name));

-- the gate staff invitation is an email of its own kind (fulfillment/mail/desk.py)
ALTER TABLE email_log DROP CONSTRAINT email_log_kind_check;
ALTER TABLE email_log ADD CONSTRAINT email_log_kind_check CHECK (kind IN (
    'tickets', 'provider_sale', 'reminder', 'refund_due', 'resend', 'transfer', 'staff_invite'));
