-- ticket_transfer: the gate register learns a ticket's new generation and attendee (a transfer),
-- so a payload of any older generation is refused at the scan from now on.
-- KEYS[1] the event's gate register (hash: ticket number -> JSON {s, g, p, seat, n}, format v1 of
--         fulfillment/issuing.py)
-- ARGV[1] ticket number
-- ARGV[2] the new generation (integer >= 1)
-- ARGV[3] the new attendee's name
-- ARGV[4] the whole entry (JSON) to write when the register has none for this ticket yet
-- returns {1, generation}: registered (at this generation already: only the name is brought
--         level; at a later one: nothing changes); {0, status}: refused, the gate has the ticket
--         as `status` (used at the door, refunded, cancelled, revoked), it keeps its generation

--- @include "argv_integer"

local number, name, fresh = ARGV[1], ARGV[3], ARGV[4]
local generation = positive_integer(2)
if not generation or #KEYS ~= 1 or not number or number == '' or not name or not fresh then
  return redis.error_reply('ERR ticket_transfer: KEYS[1]; ARGV number, generation, name, entry')
end

local raw = redis.call('HGET', KEYS[1], number)
if not raw then
  redis.call('HSET', KEYS[1], number, fresh)
  return {1, generation}
end
local entry = cjson.decode(raw)
if entry.s ~= 'valid' then
  return {0, tostring(entry.s)}
end
local current = tonumber(entry.g) or 0
if current > generation then
  return {1, current}
end
if current == generation and entry.n == name then
  return {1, generation}
end
entry.g = generation
entry.n = name
redis.call('HSET', KEYS[1], number, cjson.encode(entry))
return {1, generation}
