-- expire: return the stock of holds whose time is up (the sweeper; holds also expire lazily).
-- KEYS   the ten event keys of includes/common.lua
-- ARGV[1] the most holds to expire in this call
-- returns JSON {ok = true, expired = n, due = holds still due after this call}
--- @include "common"

local limit = tonumber(ARGV[1])
local now = now_ms()
local expired = expire_due(now, limit)
local due = redis.call('ZCOUNT', K.expiry, '-inf', now)
return cjson.encode({ok = true, expired = expired, due = due})
