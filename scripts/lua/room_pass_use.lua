-- room_pass_use: mark a pass used by the basket (hold) it made: it stands for that basket from
-- now on and admits nothing else. Called after the hold was made, so a refused hold (too few
-- left, a bad selection) does not burn the pass. A pass the tick expired in the moment between
-- the check and the hold is not recorded ('pass_expired'): its basket stands, but its checkout
-- will ask for a new turn (a window of one round trip, at the very end of the pass's life).
-- The hold is known by its id and when it was made: a hold id can be made again once its hold
-- is given back or runs out (an Idempotency-Key sent again), and that new basket is not the one
-- the pass made.
-- KEYS[1..7] the room keys of includes/room.lua
-- ARGV[1] buyer key, ARGV[2] pass number, ARGV[3] hold id (1-64 of [A-Za-z0-9_-]), ARGV[4] when
-- the hold was made (ms)
-- returns 'ok', 'again' (already recorded for this hold) or 'bad_input' | 'pass_expired' |
-- 'pass_replaced' | 'pass_used'; nothing is written unless 'ok'
--- @include "room"
--- @include "room_pass"

local buyer, no, hold, made = pass_args(4)
if not buyer or hold == '' or made == '' then return 'bad_input' end
local kind, current, detail, made_then = pass_record(buyer)
if not kind then return 'pass_expired' end
if current ~= no then return 'pass_replaced' end
if kind == 'used' then
  if detail == hold and (made_then == made or made_then == '') then return 'again' end
  return 'pass_used'  -- another basket, or one made again under its hold id
end
redis.call('ZREM', R.passes, buyer)
redis.call('HSET', R.admitted, buyer, string.format('%d|used|%s|%s', no, hold, made))
redis.call('HINCRBY', R.room, 'used', 1)
return 'ok'
