-- confirm: turn a hold into a sale and append the order to the event's orders stream.
-- Idempotent on the order number: confirming twice is one sale; a refunded order or a second
-- order number for the same hold is refused. When the hold is gone (expired
-- and swept, or released), the same stock and seats are taken again if still free; otherwise the
-- answer is 'stock_gone' so the caller can refund.
-- KEYS   the ten event keys of includes/common.lua
-- ARGV[1] hold id
-- ARGV[2] order number
-- ARGV[3] buyer key
-- ARGV[4] JSON {"ga": [[package_id, quantity, unit_price], ...], "seats": [[seat_id, package_id, price], ...]}
--         the hold's items as the order recorded them (used only when the hold is gone)
-- ARGV[5] JSON object of extra order fields for the stream entry (payment reference, ...)
-- ARGV[6] approximate maximum length of the orders stream
-- returns JSON {ok = true, sale = {...}, retaken = bool} or {ok = false, reason, ...}
--- @include "common"

local hold_id, order_no, buyer = ARGV[1], ARGV[2], ARGV[3]
local fallback = cjson.decode(ARGV[4])
local extra = ARGV[5]
local maxlen = ARGV[6]

local done = redis.call('HGET', K.sales, order_no)
if done then
  local sale = cjson.decode(done)
  if sale.state ~= 'sold' then return refuse('refunded', {order = order_no}) end
  return cjson.encode({ok = true, sale = sale, replay = true})
end
-- one hold is one sale: a second order number for the same hold is refused (the caller refunds)
local sold_as = redis.call('HGET', K.sales, 'hold:' .. hold_id)
if sold_as then return refuse('hold_already_sold', {order = sold_as}) end

local now = now_ms()
local raw = redis.call('HGET', K.holds, hold_id)
local hold, retaken
if raw then
  hold = cjson.decode(raw)
  if hold.buyer ~= buyer then return refuse('not_owner') end
  if redis.call('HGET', K.meta, 'status') == 'closed' then return refuse('not_on_sale', {status = 'closed'}) end
  for _, line in ipairs(hold.lines) do
    local pid = tostring(line[1])
    bump(pid, 'held', -line[2])
    bump(pid, 'sold', line[2])
  end
  redis.call('HDEL', K.holds, hold_id)
  redis.call('ZREM', K.expiry, hold_id)
  retaken = false
else
  if redis.call('HGET', K.meta, 'status') == 'closed' then return refuse('not_on_sale', {status = 'closed'}) end
  local want, order, lines = {}, {}, {}
  local function add(pid, qty)
    if not want[pid] then want[pid] = 0; order[#order + 1] = pid end
    want[pid] = want[pid] + qty
  end
  for _, item in ipairs(fallback.ga or {}) do add(tostring(item[1]), item[2]) end
  local taken = {}
  for _, seat in ipairs(fallback.seats or {}) do
    local state = redis.call('HGET', K.seats, tostring(seat[1]))
    if state ~= 'a' and state ~= 'h:' .. hold_id then taken[#taken + 1] = seat[1] end
    add(tostring(seat[2]), 1)
  end
  if #taken > 0 then return refuse('stock_gone', {seat_ids = taken}) end
  for _, pid in ipairs(order) do
    local avail = tonumber(redis.call('HGET', K.stock, pid .. ':avail') or '0')
    if avail < want[pid] then return refuse('stock_gone', {package_id = tonumber(pid), available = avail}) end
    lines[#lines + 1] = {tonumber(pid), want[pid]}
  end
  take(lines, 'sold', buyer)
  hold = {id = hold_id, buyer = buyer, lines = lines, ga = fallback.ga, seats = fallback.seats}
  retaken = true
end

for _, seat in ipairs(hold.seats or {}) do
  redis.call('HSET', K.seats, tostring(seat[1]), 's:' .. order_no)
end
local sale = {order = order_no, hold = hold_id, buyer = buyer, lines = hold.lines, ga = hold.ga,
              seats = hold.seats, at = now, state = 'sold'}
redis.call('HSET', K.sales, order_no, cjson.encode(sale), 'hold:' .. hold_id, order_no)
redis.call('XADD', K.orders, 'MAXLEN', '~', maxlen, '*',
           'type', 'sale', 'order', order_no, 'sale', cjson.encode(sale), 'extra', extra)
return cjson.encode({ok = true, sale = sale, retaken = retaken})
