-- When an event's stock was first loaded into Redis. A published event whose Redis state is gone
-- (a Redis that lost its data) is then not reloaded as if nothing had been sold.
ALTER TABLE events ADD COLUMN stock_loaded_at timestamptz;
