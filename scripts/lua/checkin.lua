-- checkin: one scan at the gate, atomically. The payload's signature was checked before (no I/O
-- for a forgery); here the register says whether the ticket comes in.
--- @include "checkin"
-- ARGV[1] ticket number (TKT-<event>-<serial>)
-- ARGV[2] the payload's generation, or "" when the number was typed or picked by hand
-- ARGV[3] gate name (1-40 printable characters)
-- ARGV[4] who scans (u:<user id>)
-- ARGV[5] the repeat window, ms: the same ticket again at the same gate within it is a
--         harmless repeat, not a second entry
-- returns JSON {r = admitted | repeat | used | revoked | refunded | cancelled | unknown,
--               ticket = {t, s, g, p, seat, n, at, gate}, now, fresh (admitted: the
--               check-in made the stream, see log_entry)}

local number, gen_text, gate, who = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local window = tonumber(ARGV[5])
local g = nil
if gen_text ~= nil and gen_text ~= '' then
  g = tonumber(gen_text)
  if not g or not gen_text:match('^%d+$') or g > 2147483647 then g = -1 end
end
if #KEYS ~= 3 or #ARGV ~= 5 or not good_ticket(number) or g == -1 or not good_gate(gate)
   or not good_who(who) or not whole(window, 0, 3600000) then
  return redis.error_reply('ERR checkin: KEYS register, counts, stream; ARGV number, '
                           .. 'generation, gate, who, window')
end

local now = now_ms()
local entry = entry_of(number)
local why = refusal(entry, g)
if why then
  return cjson.encode({r = why, ticket = shown(number, entry), now = now})
end
if entry.s == 'used' then
  local at = tonumber(entry.at) or 0
  local again = entry.gate == gate and now - at <= window
  return cjson.encode({r = again and 'repeat' or 'used', ticket = shown(number, entry), now = now})
end
check_in(number, entry, gate, who, now, nil)
count(gate, 1)
return cjson.encode({r = 'admitted', ticket = shown(number, entry), now = now, fresh = FRESH})
