-- release: the buyer gives a live hold back; its stock and seats return at once.
-- KEYS   the eleven event keys of includes/common.lua
-- ARGV[1] hold id
-- ARGV[2] buyer key (only the owner may release)
-- returns JSON {ok = true} or {ok = false, reason = 'unknown_hold' | 'not_owner' | 'bad_input'}
-- A hold whose time is up (by the server's clock) is unknown: it is returned to stock here if the
-- sweeper has not done so yet.
--- @include "common"

local hold_id, buyer = text(ARGV[1], 64, HOLD_ID), text(ARGV[2], 100, BUYER)
if not (hold_id and buyer) then return refuse('bad_input', {argument = 'release arguments'}) end
local raw = redis.call('HGET', K.holds, hold_id)
if not raw then return refuse('unknown_hold') end
local hold = cjson.decode(raw)
if hold.buyer ~= buyer then return refuse('not_owner') end
drop_hold(hold)
if hold.expires <= now_ms() then return refuse('unknown_hold') end
return cjson.encode({ok = true})
