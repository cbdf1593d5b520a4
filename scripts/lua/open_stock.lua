-- open_stock: end an event's restoration. The event was loaded `restoring` (nothing is held or
-- sold in that state, see load_stock.lua) while every sale of the record was re-applied; now it
-- takes the status its catalog says. An event that is not restoring is left as it is (a second
-- reconciler, or a later full load, opened it already).
-- KEYS   the eleven event keys of includes/common.lua
-- ARGV[1] the status to open with: on_sale | paused | closed
-- returns JSON {ok = true, opened = bool, status} or {ok = false, reason = 'bad_input'}
--- @include "common"

local target = ARGV[1]
if target ~= 'on_sale' and target ~= 'paused' and target ~= 'closed' then
  return refuse('bad_input', {argument = 'status'})
end
local status = redis.call('HGET', K.meta, 'status')
if status ~= 'restoring' then
  return cjson.encode({ok = true, opened = false, status = status or false})
end
redis.call('HSET', K.meta, 'status', target)
return cjson.encode({ok = true, opened = true, status = target})
