-- checkin_sync: check-ins an offline gate made, sent when its network is back. The first scan
-- wins, by the time it was made: a ticket still valid comes in at that time; one checked in
-- later elsewhere (or at this gate) is moved to this earlier scan and the later one reported;
-- one checked in earlier is a conflict (reported, nothing written); the same scan sent twice
-- (a retried sync, also after an undo of what it checked in) is a duplicate. Void tickets and
-- other generations are refused and reported: the gate's list was stale.
--- @include "checkin"
-- ARGV[1] gate (device) name
-- ARGV[2] who synced (u:<user id>)
-- ARGV[3] JSON array of at most 200 scans {id: 1-64 of A-Z a-z 0-9 _ -, t: ticket number,
--         g: generation or null (typed by hand), at: ms since the epoch when scanned}; a time
--         ahead of the server's clock counts as now
-- returns JSON {now, results = [{id, r = admitted | first | conflict | duplicate | revoked |
--         refunded | cancelled | unknown, ticket = {...}}], fresh} ("first": admitted, and the
--         check-in the server had, made later, is the conflict: `was` says where and when;
--         fresh: a check-in made the stream, see log_entry)

local MAX_ITEMS = 200
local gate, who = ARGV[1], ARGV[2]
local ok, items = pcall(cjson.decode, ARGV[3] or '')
local function fail()
  return redis.error_reply('ERR checkin_sync: KEYS register, counts, stream; ARGV gate, who, '
                           .. 'up to 200 scans {id, t, g, at}')
end
if #KEYS ~= 3 or #ARGV ~= 3 or not good_gate(gate) or not good_who(who) or not ok
   or type(items) ~= 'table' or #items == 0 or #items > MAX_ITEMS then
  return fail()
end
local seen = {}
for i, item in ipairs(items) do
  if type(item) ~= 'table' or type(item.id) ~= 'string' or not item.id:match('^[%w_%-]+$')
     or #item.id > 64 or seen[item.id] or not good_ticket(item.t)
     or (item.g ~= nil and item.g ~= cjson.null and not whole(item.g, 0, 2147483647))
     or not whole(item.at, 1, 99999999999999) then
    return fail()
  end
  seen[item.id] = true
end
for k in pairs(items) do  -- an object with extra keys is not an array
  if type(k) ~= 'number' then return fail() end
end

local now = now_ms()
local results = {}
for _, item in ipairs(items) do
  local number, at = item.t, math.min(item.at, now)
  local g = item.g ~= cjson.null and item.g or nil
  local entry = entry_of(number)
  local why = refusal(entry, g)
  local r, was = why, nil
  if not why then
    if synced_before(entry, item.id) then  -- a retried sync, even after an undo
      r = 'duplicate'
    elseif entry.s == 'valid' then
      check_in(number, entry, gate, who, at, item.id)
      count(gate, 1)
      r = 'admitted'
    elseif (tonumber(entry.at) or 0) <= at then
      r = 'conflict'
    else
      was = shown(number, entry)
      if good_gate(entry.gate) then count(entry.gate, -1) end
      check_in(number, entry, gate, who, at, item.id)
      count(gate, 1)
      r = 'first'
    end
  end
  results[#results + 1] = {id = item.id, r = r, ticket = shown(number, entry), was = was}
end
return cjson.encode({now = now, results = results, fresh = FRESH})
