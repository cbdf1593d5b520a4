-- block_seats: take available seats off sale (or put blocked seats back). All or nothing: a seat
-- that is held or sold is refused. A blocked seat counts in no package's capacity.
-- KEYS   the ten event keys of includes/common.lua
-- ARGV[1] JSON [seat_id, ...]
-- ARGV[2] "1" to block, "0" to unblock
-- returns JSON {ok = true, changed = [seat_id...]} or {ok = false, reason, seat_ids}
--- @include "common"

local ids, block = cjson.decode(ARGV[1]), ARGV[2] == '1'
local from, to = block and 'a' or 'b', block and 'b' or 'a'
local unknown, refused, changed = {}, {}, {}
for _, seat in ipairs(ids) do
  local state = redis.call('HGET', K.seats, tostring(seat))
  if not state then unknown[#unknown + 1] = seat
  elseif state ~= from and state ~= to then refused[#refused + 1] = seat end
end
if #unknown > 0 then return refuse('unknown_seat', {seat_ids = unknown}) end
if #refused > 0 then return refuse('seat_unavailable', {seat_ids = refused}) end
local by = block and -1 or 1
for _, seat in ipairs(ids) do
  local sid = tostring(seat)
  if redis.call('HGET', K.seats, sid) == from then
    local pid = tostring(cjson.decode(redis.call('HGET', K.seatinfo, sid)).p)
    redis.call('HSET', K.seats, sid, to)
    bump(pid, 'cap', by)
    bump(pid, 'avail', by)
    changed[#changed + 1] = seat
  end
end
return cjson.encode({ok = true, changed = changed})
