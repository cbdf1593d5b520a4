-- Tickets one buyer may hold and buy in an event, all packages together (a provider setting).
ALTER TABLE events ADD COLUMN max_tickets_per_buyer integer NOT NULL DEFAULT 10
    CONSTRAINT events_max_tickets_per_buyer_check CHECK (max_tickets_per_buyer BETWEEN 1 AND 1000);
-- Bumped by every change that matters to the sale; Redis records the version it has loaded, so a
-- store that missed a change (a failed commit, a process killed, an older AOF) is found and reloaded.
ALTER TABLE events ADD COLUMN catalog_version bigint NOT NULL DEFAULT 0;
