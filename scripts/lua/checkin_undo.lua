-- checkin_undo: a check-in taken back (the provider's decision, e.g. a scan at the wrong door):
-- the ticket is valid again, the counts go down, and the undo is logged through the stream.
--- @include "checkin"
-- ARGV[1] ticket number
-- ARGV[2] who undoes it (u:<user id>)
-- returns JSON {r = undone | not_used | unknown, ticket = {...} (as it was), now, fresh
--         (the undo made the stream: see log_entry)}

local number, who = ARGV[1], ARGV[2]
if #KEYS ~= 3 or #ARGV ~= 2 or not good_ticket(number) or not good_who(who) then
  return redis.error_reply('ERR checkin_undo: KEYS register, counts, stream; ARGV number, who')
end
local now = now_ms()
local entry = entry_of(number)
if entry == nil then
  return cjson.encode({r = 'unknown', ticket = shown(number, nil), now = now})
end
if entry.s ~= 'used' or not good_gate(entry.gate) then
  return cjson.encode({r = 'not_used', ticket = shown(number, entry), now = now})
end
local was = shown(number, entry)
local gate = entry.gate
entry.s, entry.at, entry.gate, entry.by, entry.oid = 'valid', nil, nil, nil, nil
redis.call('HSET', REGISTER, number, cjson.encode(entry))
count(gate, -1)
log_entry('t', number, 'a', 'undo', 'gate', gate, 'by', who,
          'at', string.format('%d', now), 'g', tostring(entry.g), 'off', '0', 'oid', '')
return cjson.encode({r = 'undone', ticket = was, now = now, fresh = FRESH})
