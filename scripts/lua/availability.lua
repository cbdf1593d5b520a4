-- availability: the event's status and every package's counters, and optionally each seat's
-- state, in one read. Read-only.
-- KEYS   the ten event keys of includes/common.lua
-- ARGV[1] "1" to include seat states
-- returns {status or false, {field, value, ...} of the stock hash, {seat, state, ...} or {}}
local status = redis.call('HGET', KEYS[1], 'status')
local stock = redis.call('HGETALL', KEYS[3])
local seats = {}
if ARGV[1] == '1' then seats = redis.call('HGETALL', KEYS[4]) end
return {status or false, stock, seats}
