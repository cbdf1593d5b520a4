-- payment_update: record what became of a payment attempt on its order draft, and the order's
-- status with it. Attempt states only move forward: starting -> pending -> succeeded | failed;
-- a success is never undone by a late failure (webhooks arrive out of order), and a failure may
-- still turn into a success (the gateway changed its mind). An attempt may be 'abandoned' (the
-- buyer chose another way to pay); what arrives for it later is still recorded.
-- KEYS[1..11] the event keys of includes/common.lua, KEYS[12] the draft's key
-- ARGV[1] our payment reference
-- ARGV[2] JSON {state = pending | succeeded | failed, gateway_ref, action, reason,
--         order_status = paid | refund_due (only with succeeded: what the sale came to)}
-- returns JSON {ok = true, draft = {...}, changed = bool} or {ok = false, reason = 'no_draft' |
--         'unknown_reference' | 'bad_input'}
--- @include "common"
--- @include "drafts"
if #KEYS ~= 12 then return refuse('bad_input', {argument = 'keys'}) end

local reference = text(ARGV[1], 80, '^[%w_%-]+$')
local update = json_of(ARGV[2])
local RANK = {starting = 0, abandoned = 0, pending = 1, failed = 2, succeeded = 3}
if not reference or not update or not RANK[update.state] or update.state == 'starting'
   or update.state == 'abandoned'
   or (update.order_status ~= nil and update.order_status ~= 'paid' and update.order_status ~= 'refund_due') then
  return refuse('bad_input', {argument = 'payment_update'})
end
local draft = load_draft()
if not draft then return refuse('no_draft') end
local attempt, live = nil, false
for _, a in ipairs(draft.payments) do
  if a.reference == reference then attempt = a end
end
if not attempt then return refuse('unknown_reference', {reference = reference}) end
local changed = RANK[update.state] > RANK[attempt.state]
                or (attempt.state == 'abandoned' and update.state ~= 'pending')
if changed then
  attempt.state = update.state
  if type(update.gateway_ref) == 'string' then attempt.gateway_ref = update.gateway_ref end
  if type(update.action) == 'table' then attempt.action = update.action end
  if type(update.reason) == 'string' then attempt.reason = string.sub(update.reason, 1, 200) end
  attempt.updated = now_ms()
elseif attempt.state == 'pending' and update.state == 'pending' and type(update.action) == 'table' then
  attempt.action = update.action
  changed = true
end
if update.order_status then
  if draft.status ~= 'paid' then draft.status = update.order_status end
elseif draft.status == 'awaiting_payment' then
  for _, a in ipairs(draft.payments) do
    if a.state == 'starting' or a.state == 'pending' then live = true end
  end
  if not live then draft.status = 'payment_failed' end
end
draft.updated = now_ms()
save_draft(draft)
return cjson.encode({ok = true, draft = draft, changed = changed})
