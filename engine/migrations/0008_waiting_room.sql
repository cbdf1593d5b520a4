-- The waiting room of timed releases: the provider's settings per event (engine/room/store.py).
-- Whether the room is on is the event's own `uses_waiting_room`; this row holds the rest. Redis
-- carries a copy for the room's scripts (room_configure.lua), made again from here when lost.
CREATE TABLE waiting_rooms (
    event_id        bigint PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    rate_per_second numeric(10, 2) NOT NULL DEFAULT 10
        CONSTRAINT waiting_rooms_rate_check CHECK (rate_per_second BETWEEN 0.01 AND 100000),
    paused          boolean NOT NULL DEFAULT false,
    difficulty      integer NOT NULL DEFAULT 14
        CONSTRAINT waiting_rooms_difficulty_check CHECK (difficulty BETWEEN 0 AND 22),
    release_at      timestamptz,   -- NULL: the earliest sale opening of the event's packages
    pass_seconds    integer NOT NULL DEFAULT 300
        CONSTRAINT waiting_rooms_pass_seconds_check CHECK (pass_seconds BETWEEN 10 AND 3600),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
