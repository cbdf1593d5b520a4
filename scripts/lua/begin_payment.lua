-- begin_payment: record a payment attempt on an order draft before the gateway is asked, so that
-- two attempts can never run at once (a refresh, a back button, a double click): while one is
-- under way the next is refused `payment_pending` with its reference. The hold must be live.
-- KEYS[1..11] the event keys of includes/common.lua, KEYS[12] the draft's key
-- ARGV[1] hold id
-- ARGV[2] buyer key
-- ARGV[3] JSON {reference, gateway, method}
-- ARGV[4] how long, ms, an attempt may stay 'starting' (the gateway never answered, the process
--         died) before a new one may replace it
-- returns JSON {ok = true, draft = {...}, hold = {...}, now = ms} or {ok = false, reason, ...}:
--         no_draft, not_owner, payment_pending, already_paid, cancelled, hold_expired,
--         too_many_attempts, bad_input
--- @include "common"
--- @include "drafts"
if #KEYS ~= 12 then return refuse('bad_input', {argument = 'keys'}) end

local hold_id, buyer = text(ARGV[1], 64, HOLD_ID), text(ARGV[2], 100, BUYER)
local attempt = json_of(ARGV[3])
local stale_after = int_in(ARGV[4], 1000, 86400000)
if not (hold_id and buyer and attempt and stale_after) or not text(attempt.reference, 80, '^[%w_%-]+$')
   or not text(attempt.gateway, 30, '^[%w_]+$') or not text(attempt.method, 30, '^[%w_]+$') then
  return refuse('bad_input', {argument = 'begin_payment'})
end
local now = now_ms()
local draft = load_draft()
if not draft then return refuse('no_draft') end
if draft.buyer ~= buyer then return refuse('not_owner') end
if draft.status == 'paid' or draft.status == 'refund_due' then return refuse('already_paid', {order = draft.order}) end
if draft.status == 'cancelled' then return refuse('cancelled', {order = draft.order}) end
if draft.status == 'awaiting_payment' then
  local last = draft.payments[#draft.payments]
  if not (last and last.state == 'starting' and last.created + stale_after < now) then
    return refuse('payment_pending', {reference = last and last.reference or ''})
  end
  last.state = 'abandoned'
end
if #draft.payments >= 20 then return refuse('too_many_attempts', {order = draft.order}) end
local hold, refused = live_hold(hold_id, buyer, now)
if not hold then return refused end
draft.payments[#draft.payments + 1] = {reference = attempt.reference, gateway = attempt.gateway,
  method = attempt.method, state = 'starting', created = now}
draft.status = 'awaiting_payment'
draft.updated = now
save_draft(draft)
return cjson.encode({ok = true, draft = draft, hold = hold, now = now})
