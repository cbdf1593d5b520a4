-- attempt_window: count one attempt in a fixed window and say whether it is within the limit
-- (logins and registrations per client address).
-- KEYS[1] the window's counter (a string that expires when its window ends)
-- ARGV[1] attempts allowed per window (integer >= 1)
-- ARGV[2] window length in milliseconds (integer >= 1)
-- returns {1, 0} counted within the limit, or {0, ms}: refused, the window ends in ms

--- @include "argv_integer"

local limit = positive_integer(1)
local window = positive_integer(2)
if not (limit and window) then
  return redis.error_reply('ERR attempt_window: limit and window must be positive integers')
end

local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then  -- a new window, or a counter that somehow lost its expiry
  redis.call('PEXPIRE', KEYS[1], window)
  ttl = window
end
if n > limit then
  return {0, ttl}
end
return {1, 0}
