-- extend: give a live hold more time, once, within a bound: while a mobile-money payment waits for
-- the buyer to type a PIN on their phone, the tickets must not lapse under them.
-- KEYS   the eleven event keys of includes/common.lua
-- ARGV[1] hold id
-- ARGV[2] buyer key
-- ARGV[3] the hold should live at least this long from now, ms
-- ARGV[4] a hold never lives longer than this from its creation, ms
-- returns JSON {ok = true, expires = ms, extended = bool} or {ok = false, reason =
--         'hold_expired' | 'not_owner' | 'bad_input'}; a second call extends no further
--- @include "common"

local hold_id, buyer = text(ARGV[1], 64, HOLD_ID), text(ARGV[2], 100, BUYER)
local wanted, longest = int_in(ARGV[3], 0, 86400000), int_in(ARGV[4], 0, 86400000)
if not (hold_id and buyer and wanted and longest) then return refuse('bad_input', {argument = 'extend'}) end
local now = now_ms()
local raw = redis.call('HGET', K.holds, hold_id)
if not raw then return refuse('hold_expired') end
local hold = cjson.decode(raw)
if hold.buyer ~= buyer then return refuse('not_owner') end
if hold.expires <= now then return refuse('hold_expired') end
if hold.extended then return cjson.encode({ok = true, expires = hold.expires, extended = false}) end
local expires = math.min(math.max(hold.expires, now + wanted), hold.created + longest)
if expires <= hold.expires then return cjson.encode({ok = true, expires = hold.expires, extended = false}) end
hold.expires = expires
hold.extended = true
redis.call('HSET', K.holds, hold_id, cjson.encode(hold))
redis.call('ZADD', K.expiry, expires, hold_id)
return cjson.encode({ok = true, expires = expires, extended = true})
