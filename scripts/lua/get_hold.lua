-- get_hold: a live hold by its id, or the buyer's basket (their one live hold) in this event,
-- judged by the server's clock like every script that writes holds. Read-only.
-- KEYS   the eleven event keys of includes/common.lua
-- ARGV[1] hold id, or "" to look up the basket of ARGV[2]
-- ARGV[2] buyer key (may be "" when ARGV[1] is given)
-- returns JSON {ok = true, now = ms, hold = {...} or absent}
--- @include "common"

local hold_id = ARGV[1]
if hold_id == '' then
  if not text(ARGV[2], 100, BUYER) then return refuse('bad_input', {argument = 'buyer'}) end
  hold_id = redis.call('HGET', K.buyers, ARGV[2] .. '|b')
elseif not text(hold_id, 64, HOLD_ID) then
  return refuse('bad_input', {argument = 'hold id'})
end
local now = now_ms()
local raw = hold_id and redis.call('HGET', K.holds, hold_id)
if raw then
  local hold = cjson.decode(raw)
  if hold.expires > now then return cjson.encode({ok = true, now = now, hold = hold}) end
end
return cjson.encode({ok = true, now = now})
