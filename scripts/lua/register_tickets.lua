-- register_tickets: tickets into the gate register, only ever forward. A ticket the register does
-- not have is written as sent; one it has moves only to a higher generation (a transfer the
-- register missed) or, at the same generation, to a later status (valid -> used -> cancelled,
-- refunded or revoked). Nothing goes back: an older generation, or a used ticket made valid again,
-- is kept as the register has it, and so is any field the entry sent does not carry (check-in
-- state). So a stale read (an order entry handled again, a restore re-registering from the record)
-- can never revive a code a transfer or a refund replaced, nor undo a check-in.
-- KEYS[1] the event's gate register (hash: ticket number -> JSON {s, g, p, seat, n}, format v1 of
--         fulfillment/issuing.py)
-- ARGV    pairs: ticket number, entry (JSON {s, g, p, seat, n}); at most 500 pairs a call
-- returns how many tickets were written (added or moved forward)

local MAX_PAIRS = 500
local RANK = {valid = 1, used = 2, cancelled = 3, refunded = 3, revoked = 3}

local function whole(v, least)
  return type(v) == 'number' and v >= least and v % 1 == 0 and v < 2^53
end

local function entry_of(raw)
  local ok, entry = pcall(cjson.decode, raw)
  if not ok or type(entry) ~= 'table' or not RANK[entry.s] or not whole(entry.g, 1)
     or not whole(entry.p, 1) or type(entry.n) ~= 'string'
     or (entry.seat ~= cjson.null and entry.seat ~= nil and not whole(entry.seat, 1)) then
    return nil
  end
  return entry
end

-- validate everything before the first write
if #KEYS ~= 1 or #ARGV == 0 or #ARGV % 2 ~= 0 or #ARGV > 2 * MAX_PAIRS then
  return redis.error_reply('ERR register_tickets: KEYS[1]; ARGV 1 to 500 pairs of number, entry')
end
local incoming = {}
for i = 1, #ARGV, 2 do
  local number, entry = ARGV[i], entry_of(ARGV[i + 1])
  if number == '' or #number > 64 or not entry then
    return redis.error_reply('ERR register_tickets: pair ' .. ((i + 1) / 2)
                             .. ' is not a ticket number and a {s, g, p, seat, n} entry')
  end
  incoming[#incoming + 1] = {number, entry, ARGV[i + 1]}
end

local written = 0
for _, item in ipairs(incoming) do
  local number, new, raw = item[1], item[2], item[3]
  local current = redis.call('HGET', KEYS[1], number)
  local old = current and entry_of(current)
  if not old then  -- absent (or unreadable: the record's entry is better than garbage)
    redis.call('HSET', KEYS[1], number, raw)
    written = written + 1
  elseif new.g > old.g or (new.g == old.g and RANK[new.s] > RANK[old.s]) then
    local keep = RANK[old.s] > RANK[new.s] and old.s or new.s  -- never back to valid
    for k, v in pairs(new) do old[k] = v end  -- fields the entry lacks (check-in) stay
    old.s = keep
    redis.call('HSET', KEYS[1], number, cjson.encode(old))
    written = written + 1
  end
end
return written
