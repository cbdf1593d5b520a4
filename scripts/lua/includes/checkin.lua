-- Shared by the check-in scripts (checkin, checkin_undo, checkin_sync), pasted where a script
-- says `--- @include "checkin"`. Their keys, all under the event's hash tag:
--   KEYS[1] the gate register (hash: ticket number -> JSON {s, g, p, seat, n} of
--           engine/tickets/gate.py; a check-in adds at (ms), gate, by and, from an offline
--           gate, oid, the device's id of that scan, also kept in oids, which an undo keeps)
--   KEYS[2] the check-in counts (hash: "in" -> tickets checked in, "g:<gate>" -> by gate)
--   KEYS[3] the check-in stream (fields t, a = in | undo, gate, by, at (ms), g, off = 0 | 1, oid;
--           written to Postgres by fulfillment/checkins.py)
local REGISTER, COUNTS, STREAM = KEYS[1], KEYS[2], KEYS[3]
local VOID = {revoked = true, refunded = true, cancelled = true}

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function whole(v, least, most)
  return type(v) == 'number' and v >= least and v <= most and v % 1 == 0
end

-- a gate or device name: 1-40 printable characters (UTF-8: counted without continuation bytes,
-- so a name in any script has the 40 characters the API allows); who: u:<digits>; a ticket:
-- TKT-<id>-<serial>
local function good_gate(v)
  return type(v) == 'string' and #v >= 1 and #v <= 160 and not v:find('%c')
         and #(v:gsub('[\128-\191]', '')) <= 40
end
local function good_who(v) return type(v) == 'string' and v:match('^u:%d+$') ~= nil and #v <= 24 end
local function good_ticket(v)
  return type(v) == 'string' and #v <= 64 and v:match('^TKT%-%d+%-[0-9A-Z]+$') ~= nil
end

local function entry_of(number)
  local raw = redis.call('HGET', REGISTER, number)
  if not raw then return nil end
  local ok, entry = pcall(cjson.decode, raw)
  if not ok or type(entry) ~= 'table' or type(entry.s) ~= 'string' then return nil end
  return entry
end

-- why `entry` may not come in with a payload of generation `g` (nil: it may); g == nil when
-- the ticket number was typed or picked by hand
local function refusal(entry, g)
  if entry == nil then return 'unknown' end
  if VOID[entry.s] then return entry.s end
  if entry.s ~= 'valid' and entry.s ~= 'used' then return 'unknown' end
  if g ~= nil and g ~= entry.g then return 'revoked' end
  return nil
end

local function count(gate, by)
  redis.call('HINCRBY', COUNTS, 'in', by)
  redis.call('HINCRBY', COUNTS, 'g:' .. gate, by)
end

-- whether the offline scan `id` was applied to `entry` before (`oids`, the last MAX_OIDS kept
-- through an undo: a sync retried after one is a duplicate, not a new check-in)
local MAX_OIDS = 8
local function synced_before(entry, id)
  if entry.oid == id then return true end
  if type(entry.oids) ~= 'table' then return false end
  for _, seen in ipairs(entry.oids) do
    if seen == id then return true end
  end
  return false
end

-- an entry into the check-in stream; FRESH when it made the stream (the first entry, or Redis
-- lost the stream): the desk then announces the event to the writer again
local FRESH = false
local function log_entry(...)
  if redis.call('EXISTS', STREAM) == 0 then FRESH = true end
  redis.call('XADD', STREAM, '*', ...)
end

local function check_in(number, entry, gate, who, at, oid)
  entry.s, entry.at, entry.gate, entry.by, entry.oid = 'used', at, gate, who, oid
  if oid then
    local oids = type(entry.oids) == 'table' and entry.oids or {}
    oids[#oids + 1] = oid
    if #oids > MAX_OIDS then table.remove(oids, 1) end
    entry.oids = oids
  end
  redis.call('HSET', REGISTER, number, cjson.encode(entry))
  log_entry('t', number, 'a', 'in', 'gate', gate, 'by', who,
             'at', string.format('%d', at), 'g', tostring(entry.g), 'off', oid and '1' or '0',
             'oid', oid or '')
end

-- what a scan answer shows of a ticket
local function shown(number, entry)
  if entry == nil then return {t = number} end
  return {t = number, s = entry.s, g = entry.g, p = entry.p, seat = entry.seat, n = entry.n,
          at = entry.at, gate = entry.gate}
end
