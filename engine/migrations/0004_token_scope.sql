-- API tokens get a scope and an optional expiry. `write` is everything the user's role allows,
-- which is what every token made before scopes existed could do, so they keep it.
ALTER TABLE api_tokens
    ADD COLUMN scope text NOT NULL DEFAULT 'write'
        CONSTRAINT api_tokens_scope_check CHECK (scope IN ('read', 'write', 'scan')),
    ADD COLUMN expires_at timestamptz;
