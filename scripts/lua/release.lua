-- release: the buyer gives a live hold back; its stock and seats return at once. Not while a
-- payment for it is under way (its order draft awaits the gateway's answer): that money would pay
-- for tickets gone back on sale.
-- KEYS[1..11] the event keys of includes/common.lua, KEYS[12] the hold's order draft key
-- ARGV[1] hold id
-- ARGV[2] buyer key (only the owner may release)
-- returns JSON {ok = true} or {ok = false, reason = 'unknown_hold' | 'not_owner' |
--         'payment_pending' | 'bad_input'}
-- A hold whose time is up (by the server's clock) is unknown: it is returned to stock here if the
-- sweeper has not done so yet.
--- @include "common"
--- @include "drafts"

local hold_id, buyer = text(ARGV[1], 64, HOLD_ID), text(ARGV[2], 100, BUYER)
if not (hold_id and buyer) or #KEYS ~= 12 then
  return refuse('bad_input', {argument = 'release arguments'})
end
local raw = redis.call('HGET', K.holds, hold_id)
if not raw then return refuse('unknown_hold') end
local hold = cjson.decode(raw)
if hold.buyer ~= buyer then return refuse('not_owner') end
local draft = load_draft()
if draft and draft.status == 'awaiting_payment' then
  return refuse('payment_pending', {order = draft.order})
end
drop_hold(hold)
if hold.expires <= now_ms() then return refuse('unknown_hold') end
return cjson.encode({ok = true})
