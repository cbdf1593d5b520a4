-- A visitor's pass as the room keeps it (includes/room.lua: R.admitted), pasted where a pass
-- script says `--- @include "room_pass"`. Returns 'live', 'used' or nil, the pass number, the
-- expiry (live) or the hold id (used), and (used) when that hold was made (ms; '' in a record
-- written before it was kept).
local function pass_record(buyer)
  local raw = redis.call('HGET', R.admitted, buyer)
  if not raw then return nil end
  local no, second, third, fourth = string.match(raw, '^(%d+)|([^|]+)|?([^|]*)|?(.*)$')
  if second == 'used' then return 'used', tonumber(no), third, fourth end
  return 'live', tonumber(no), tonumber(second)
end

-- The buyer, pass number and hold id of ARGV[1..3], and with `count` 4 the hold's creation time
-- (ARGV[4], ms), checked; nil when any is malformed.
local function pass_args(count)
  local buyer, no, hold, made = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4] or ''
  if #KEYS ~= 7 or #ARGV ~= count or type(buyer) ~= 'string' or #buyer < 1 or #buyer > 100
     or not no or no ~= math.floor(no) or no < 1 or no > 1e14
     or #hold > 64 or not string.match(hold, '^[A-Za-z0-9_-]*$')
     or #made > 15 or not string.match(made, '^%d*$') then
    return nil
  end
  return buyer, no, hold, made
end
