-- A visitor's pass as the room keeps it (includes/room.lua: R.admitted), pasted where a pass
-- script says `--- @include "room_pass"`. Returns 'live', 'used' or nil, the pass number, the
-- expiry (live) or the hold id (used).
local function pass_record(buyer)
  local raw = redis.call('HGET', R.admitted, buyer)
  if not raw then return nil end
  local no, second, third = string.match(raw, '^(%d+)|([^|]+)|?(.*)$')
  if second == 'used' then return 'used', tonumber(no), third end
  return 'live', tonumber(no), tonumber(second)
end

local function pass_args()
  local buyer, no, hold = ARGV[1], tonumber(ARGV[2]), ARGV[3]
  if #KEYS ~= 7 or #ARGV ~= 3 or type(buyer) ~= 'string' or #buyer < 1 or #buyer > 100
     or not no or no ~= math.floor(no) or no < 1 or no > 1e14
     or #hold > 64 or not string.match(hold, '^[A-Za-z0-9_-]*$') then
    return nil
  end
  return buyer, no, hold
end
