-- cancel_order: the buyer gives up before paying: the hold is given back at once and the draft
-- (if any) is marked cancelled. Refused while a payment is under way or once paid.
-- KEYS[1..11] the event keys of includes/common.lua, KEYS[12] the draft's key
-- ARGV[1] hold id
-- ARGV[2] buyer key
-- returns JSON {ok = true, released = bool} or {ok = false, reason = 'not_owner' |
--         'payment_pending' | 'already_paid' | 'bad_input'}
--- @include "common"
--- @include "drafts"
if #KEYS ~= 12 then return refuse('bad_input', {argument = 'keys'}) end

local hold_id, buyer = text(ARGV[1], 64, HOLD_ID), text(ARGV[2], 100, BUYER)
if not (hold_id and buyer) then return refuse('bad_input', {argument = 'cancel_order'}) end
local draft = load_draft()
if draft then
  if draft.buyer ~= buyer then return refuse('not_owner') end
  if draft.status == 'awaiting_payment' then return refuse('payment_pending', {order = draft.order}) end
  if draft.status == 'paid' or draft.status == 'refund_due' then return refuse('already_paid', {order = draft.order}) end
end
local released = false
local raw = redis.call('HGET', K.holds, hold_id)
if raw then
  local hold = cjson.decode(raw)
  if hold.buyer ~= buyer then return refuse('not_owner') end
  drop_hold(hold)
  released = true
end
if draft then
  draft.status = 'cancelled'
  draft.updated = now_ms()
  save_draft(draft)
end
return cjson.encode({ok = true, released = released})
