-- expire: return the stock of holds whose time is up (the sweeper; holds also expire lazily).
-- In a closed (cancelled or completed) event every live hold is due. Also drops a page of the
-- hold rate limits' states that are past (K.limits would otherwise keep one per buyer and address).
-- KEYS   the eleven event keys of includes/common.lua
-- ARGV[1] the most holds to expire in this call (1 to 1000)
-- returns JSON {ok = true, expired = n, due = holds still due after this call, status}
--- @include "common"
--- @include "ratelimit"

local limit = int_in(ARGV[1], 1, 1000)
if not limit then return refuse('bad_input', {argument = 'limit'}) end
local now = now_ms()
local status = redis.call('HGET', K.meta, 'status') or false
local expired = expire_due(now, limit, status)
trim_limits(K.limits, now, 500)
local due
if status == 'closed' then
  due = redis.call('ZCARD', K.expiry)
else
  due = redis.call('ZCOUNT', K.expiry, '-inf', now)
end
return cjson.encode({ok = true, expired = expired, due = due, status = status})
