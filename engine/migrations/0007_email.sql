-- Email: every message Kwika sends, one row per message (not per attempt), claimed before it is
-- sent and marked after, so that each is sent once however many workers race for it or however
-- often its queue entry is delivered. UNIQUE (kind, dedupe_key) is the guard; see
-- fulfillment/mail/log.py for the protocol.

CREATE TABLE email_log (
    id            bigserial PRIMARY KEY,
    kind          text NOT NULL CONSTRAINT email_log_kind_check
        CHECK (kind IN ('tickets', 'provider_sale', 'reminder', 'refund_due', 'resend', 'transfer')),
    dedupe_key    text NOT NULL,   -- per kind: order number, payment reference, ticket:generation, ...
    order_number  text,
    to_address    text NOT NULL,
    subject       text NOT NULL DEFAULT '',
    status        text NOT NULL DEFAULT 'sending' CONSTRAINT email_log_status_check
        CHECK (status IN ('sending', 'retrying', 'sent', 'failed')),
    attempts      integer NOT NULL DEFAULT 1 CONSTRAINT email_log_attempts_check CHECK (attempts >= 0),
    error         text,            -- the last failure (an SMTP reply or a connection error)
    message_id    text NOT NULL,   -- fixed at the first claim: a resent copy carries the same one
    claimed_by    text,
    lease_until   timestamptz,     -- 'sending': another worker may take it over after this
    next_attempt_at timestamptz,   -- 'retrying': not before this
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    CONSTRAINT email_log_kind_dedupe_key UNIQUE (kind, dedupe_key)
);
CREATE INDEX email_log_order_idx ON email_log (order_number);
CREATE INDEX email_log_open_idx ON email_log (status, next_attempt_at)
    WHERE status IN ('sending', 'retrying');

-- the refund-due notice is addressed from the payment's record: a payment marked refund_due now
-- keeps what it tried to buy (billing included) in `sale` as well; only a succeeded payment's
-- `sale` is ever re-applied to Redis (engine/onsale.py reads state = 'succeeded')
COMMENT ON COLUMN payments.sale IS
    'engine.orders.SaleRecord of a succeeded payment (re-applied if Redis lost the sale) or of a '
    'refund_due one (what it tried to buy, and who to tell)';
