-- rate_limit: pass one request through a limit, or say how long to wait (GCRA, see
-- includes/ratelimit.lua). For limits that span events (new guest identities per client address),
-- which the event scripts may not touch.
-- KEYS[1] the limit's key
-- ARGV[1] burst (requests let through at once), ARGV[2] requests a minute after that
-- returns the wait in ms: 0 when the request passed (and was counted)
--- @include "ratelimit"

local burst, per_minute = tonumber(ARGV[1]), tonumber(ARGV[2])
if not burst or not per_minute or burst < 1 or per_minute < 1 or burst ~= math.floor(burst)
   or #KEYS ~= 1 then
  return redis.error_reply('rate_limit: KEYS[1], and ARGV burst and per_minute as whole numbers >= 1')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return take_tokens({{KEYS[1], burst, per_minute}}, now)
