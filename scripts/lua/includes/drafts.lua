-- Order drafts, pasted by the loader where a script says `--- @include "drafts"` (after common).
-- A draft is the checkout of one hold: attendees, billing, amounts, payment attempts, status. It
-- lives in its own key (KEYS[12], `{ev:N}:draft:<hold id>`) beside the hold, and outlives it (a
-- late payment still needs it), expiring on its own.
-- status: draft | awaiting_payment | paid | payment_failed | refund_due | cancelled

local DRAFT = KEYS[12]

local function load_draft()
  local raw = redis.call('GET', DRAFT)
  if not raw then return nil end
  local d = cjson.decode(raw)
  if d.payments == nil or next(d.payments) == nil then d.payments = {} end
  return d
end

local function save_draft(d, ttl)
  if ttl then
    redis.call('SET', DRAFT, cjson.encode(d), 'EX', ttl)
  else
    redis.call('SET', DRAFT, cjson.encode(d), 'KEEPTTL')
  end
end

-- The live hold `hold_id` of `buyer` by the server's clock, or nil and the refusal.
local function live_hold(hold_id, buyer, now)
  local raw = redis.call('HGET', K.holds, hold_id)
  if not raw then return nil, refuse('hold_expired') end
  local hold = cjson.decode(raw)
  if hold.buyer ~= buyer then return nil, refuse('not_owner') end
  if hold.expires <= now then return nil, refuse('hold_expired') end
  return hold
end

local function tickets_of(hold)
  local n = 0
  for _, line in ipairs(hold.lines) do n = n + line[2] end
  return n
end
