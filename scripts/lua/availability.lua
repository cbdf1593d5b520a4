-- availability: the event's status and every package's counters, and optionally seats' states,
-- in one read. Read-only.
-- KEYS   the eleven event keys of includes/common.lua
-- ARGV[1] "1" to include every seat's state, "0" for none, or "ids" to include the states of
--         the seats listed in ARGV[2..] only (an HMGET: asking about a few seats stays cheap
--         however large the venue)
-- returns {status or false, {field, value, ...} of the stock hash, {seat, state, ...} or {}}
local status = redis.call('HGET', KEYS[1], 'status')
local stock = redis.call('HGETALL', KEYS[3])
local seats = {}
if ARGV[1] == '1' then
  seats = redis.call('HGETALL', KEYS[4])
elseif ARGV[1] == 'ids' and #ARGV > 1 and #ARGV <= 101 then
  local ids = {}
  for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
  local states = redis.call('HMGET', KEYS[4], unpack(ids))
  for i, id in ipairs(ids) do
    if states[i] then
      seats[#seats + 1] = id
      seats[#seats + 1] = states[i]
    end
  end
end
return {status or false, stock, seats}
