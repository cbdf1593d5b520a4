-- room_status: a visitor's place in an event's waiting room, after an admission tick (so every
-- position read also moves the line on; see room_tick.lua).
-- KEYS[1..7] the room keys of includes/room.lua
-- ARGV[1] the buyer key (1-100 printable characters)
-- returns JSON of the room's figures (with `admitted_now`, by this read's tick) plus `place`: 'none' | 'queued' | 'prequeue' | 'admitted'
-- | 'used', with `ahead` (visitors in front) when queued, `pass` and `expires` when admitted,
-- `hold` when used; {state = 'unconfigured'} when the room has no settings; 'bad_input' refused.
--- @include "room"

local buyer = ARGV[1]
if #KEYS ~= 7 or type(buyer) ~= 'string' or #buyer < 1 or #buyer > 100 then
  return cjson.encode({state = 'bad_input'})
end
local cfg = room_settings()
if not cfg.on then return cjson.encode({state = 'unconfigured'}) end
local now = room_now()
local state, n, avail, held = room_tick(cfg, now)
local out = room_figures(cfg, state, now, avail, held)
out.admitted_now = n  -- by this read's tick
out.place = 'none'
local pass = redis.call('HGET', R.admitted, buyer)
local rank = redis.call('ZRANK', R.queue, buyer)
if pass and not (rank and string.find(pass, '|used|', 1, true)) then
  local no, second, third = string.match(pass, '^(%d+)|([^|]+)|?([^|]*)')
  out.pass = tonumber(no)
  if second == 'used' then
    out.place, out.hold = 'used', third
  else
    out.place, out.expires = 'admitted', tonumber(second)
  end
elseif rank then  -- (queued again after a used pass: the new place is what counts)
  if now < cfg.release then out.place = 'prequeue' else out.place = 'queued' end
  out.ahead = rank
end
return cjson.encode(out)
