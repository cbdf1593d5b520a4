-- checkout: write the order draft of a live hold (attendees, billing, amounts), or update it while
-- no payment is under way. The amounts come from the hold itself, never from the caller.
-- KEYS[1..11] the event keys of includes/common.lua, KEYS[12] the draft's key
-- ARGV[1] hold id
-- ARGV[2] buyer key (only the hold's owner checks out)
-- ARGV[3] JSON {order, attendees = [{name, email, phone}], billing = {name, email, phone},
--         fee = service fee per ticket (minor units), currency}
--         `order` is the order number to use when the draft is new (an existing draft keeps its own)
-- ARGV[4] the draft's lifetime, seconds
-- returns JSON {ok = true, draft = {...}, hold = {...}, now = ms} or {ok = false, reason, ...}:
--         hold_expired, not_owner, attendees_mismatch (count), payment_in_progress, already_paid,
--         bad_input
--- @include "common"
--- @include "drafts"
if #KEYS ~= 12 then return refuse('bad_input', {argument = 'keys'}) end

local hold_id, buyer = text(ARGV[1], 64, HOLD_ID), text(ARGV[2], 100, BUYER)
local input = json_of(ARGV[3])
local ttl = int_in(ARGV[4], 60, 90 * 86400)
if not (hold_id and buyer and input and ttl) then return refuse('bad_input', {argument = 'checkout'}) end
local attendees = array(input.attendees, MAX_SEATS * 10)
if not attendees or type(input.billing) ~= 'table' or not int_in(input.fee, 0, MAX_ID)
   or not text(input.order, 64, '^[%w_%-]+$') or not text(input.currency, 3, '^%u%u%u$') then
  return refuse('bad_input', {argument = 'checkout'})
end

local now = now_ms()
local hold, refused = live_hold(hold_id, buyer, now)
if not hold then return refused end
local tickets = tickets_of(hold)
if #attendees ~= tickets then
  return refuse('attendees_mismatch', {expected = tickets, given = #attendees})
end

local draft = load_draft()
if draft then
  if draft.buyer ~= buyer then return refuse('not_owner') end
  if draft.status == 'awaiting_payment' then return refuse('payment_in_progress', {order = draft.order}) end
  if draft.status == 'paid' or draft.status == 'refund_due' then
    return refuse('already_paid', {order = draft.order})
  end
else
  draft = {order = input.order, hold = hold_id, buyer = buyer, created = now, payments = {}}
end
local subtotal = 0
for _, line in ipairs(hold.ga) do subtotal = subtotal + line[2] * line[3] end
for _, seat in ipairs(hold.seats) do subtotal = subtotal + seat[3] end
draft.status = 'draft'
draft.attendees = attendees
draft.billing = input.billing
draft.items, draft.seats = hold.ga, hold.seats
draft.tickets = tickets
draft.subtotal = subtotal
draft.fees = input.fee * tickets
draft.total = subtotal + draft.fees
draft.currency = input.currency
draft.updated = now
save_draft(draft, ttl)
return cjson.encode({ok = true, draft = draft, hold = hold, now = now})
