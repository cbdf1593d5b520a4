-- release: the buyer gives a live hold back; its stock and seats return at once.
-- KEYS   the ten event keys of includes/common.lua
-- ARGV[1] hold id
-- ARGV[2] buyer key (only the owner may release)
-- returns JSON {ok = true} or {ok = false, reason = 'unknown_hold' | 'not_owner'}
--- @include "common"

local hold_id, buyer = ARGV[1], ARGV[2]
local raw = redis.call('HGET', K.holds, hold_id)
if not raw then return refuse('unknown_hold') end
local hold = cjson.decode(raw)
if hold.buyer ~= buyer then return refuse('not_owner') end
drop_hold(hold)
return cjson.encode({ok = true})
