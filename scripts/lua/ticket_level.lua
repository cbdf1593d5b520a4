-- ticket_level: the gate register takes a ticket's generation and attendee from the record
-- (Postgres wins), after a transfer whose commit failed left the register ahead of the record, or
-- a register restored from an older copy left it behind. The caller holds the ticket's row lock
-- in Postgres, so no transfer of it is under way. The entry's status (a check-in the record has
-- not heard of yet) is the gate's and is kept.
-- KEYS[1] the event's gate register (hash: ticket number -> JSON {s, g, p, seat, n}, format v1 of
--         fulfillment/issuing.py)
-- ARGV[1] ticket number
-- ARGV[2] the record's generation (integer >= 1)
-- ARGV[3] the record's attendee name
-- returns 1: changed; 0: the register already agreed, or has no entry for the ticket (the issuer
--         writes those)

--- @include "argv_integer"

local number, name = ARGV[1], ARGV[3]
local generation = positive_integer(2)
if not generation or #KEYS ~= 1 or not number or number == '' or not name then
  return redis.error_reply('ERR ticket_level: KEYS[1]; ARGV number, generation, name')
end

local raw = redis.call('HGET', KEYS[1], number)
if not raw then
  return 0
end
local entry = cjson.decode(raw)
if tonumber(entry.g) == generation and entry.n == name then
  return 0
end
entry.g = generation
entry.n = name
redis.call('HSET', KEYS[1], number, cjson.encode(entry))
return 1
