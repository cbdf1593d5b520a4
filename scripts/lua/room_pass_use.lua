-- room_pass_use: mark a pass used by the basket (hold) it made: it stands for that basket from
-- now on and admits nothing else. Called after the hold was made, so a refused hold (too few
-- left, a bad selection) does not burn the pass. A pass the tick expired in the moment between
-- the check and the hold is not recorded ('pass_expired'): its basket stands, but its checkout
-- will ask for a new turn (a window of one round trip, at the very end of the pass's life).
-- KEYS[1..7] the room keys of includes/room.lua
-- ARGV[1] buyer key, ARGV[2] pass number, ARGV[3] hold id (1-64 of [A-Za-z0-9_-])
-- returns 'ok', 'again' (already recorded for this hold) or 'bad_input' | 'pass_expired' |
-- 'pass_replaced' | 'pass_used'; nothing is written unless 'ok'
--- @include "room"
--- @include "room_pass"

local buyer, no, hold = pass_args()
if not buyer or hold == '' then return 'bad_input' end
local kind, current, detail = pass_record(buyer)
if not kind then return 'pass_expired' end
if current ~= no then return 'pass_replaced' end
if kind == 'used' then
  if detail == hold then return 'again' end
  return 'pass_used'
end
redis.call('ZREM', R.passes, buyer)
redis.call('HSET', R.admitted, buyer, string.format('%d|used|%s', no, hold))
redis.call('HINCRBY', R.room, 'used', 1)
return 'ok'
