-- confirm: turn a hold into a sale and append the order to the event's orders stream.
-- Idempotent on the order number: confirming twice is one sale; a refunded order, an order
-- number already used for another hold, or a second order number for the same hold is refused,
-- and so is a live hold whose tickets are not the ones the order recorded (hold_changed).
--
-- Late payments (the hold is gone: expired and swept, or released). The same stock and seats are
-- taken again only when a new hold for them would be allowed right now: the event on sale (not
-- paused or closed), each package active and inside its sale window, the order size, the
-- package's per-buyer limit and the event's buyer_cap respected, and every ticket and seat still
-- free. Otherwise the answer is a refusal (stock_gone, not_on_sale, sale_closed, limit_exceeded,
-- ...) and the caller refunds the payment. A live hold is sold while the event is on sale or
-- paused (postponed), never once it is closed.
-- KEYS   the eleven event keys of includes/common.lua
-- ARGV[1] hold id
-- ARGV[2] order number
-- ARGV[3] buyer key
-- ARGV[4] JSON {"ga": [[package_id, quantity, unit_price], ...], "seats": [[seat_id, package_id, price], ...]}
--         the hold's items as the order recorded them (used only when the hold is gone)
-- ARGV[5] JSON object of extra order fields for the stream entry (payment reference, ...)
-- ARGV[6] "restore" to re-apply a sale the record (Postgres) holds but this Redis lost (restored
--         from an older copy): the sale rules and limits are not asked again, a seat another
--         hold sits on is taken back from it, and so are tickets of a package whose available
--         stock live holds took (the newest holds give way first); "" otherwise
-- While the event is `restoring` (its sales being re-applied from the record, engine/onsale.py)
-- only a restore is made; any other confirm is refused `restoring` and is to be retried, not
-- refunded: the event opens again in moments.
-- returns JSON {ok = true, sale = {...}, retaken = bool, replay = bool} or {ok = false, reason, ...}
-- The orders stream is never trimmed here: entries leave it only once every consumer group
-- has acknowledged them (fulfillment).
--- @include "common"

local hold_id = text(ARGV[1], 64, HOLD_ID)
local order_no = text(ARGV[2], 64, '^[%w_%-]+$')
local buyer = text(ARGV[3], 100, BUYER)
local fallback = json_of(ARGV[4])
local extra = ARGV[5]
local restore = ARGV[6] == 'restore'

if not (hold_id and order_no and buyer and fallback) or #extra > 65536 or not json_of(extra) then
  return refuse('bad_input', {argument = 'confirm arguments'})
end
local fb_ga, fb_seats = array(fallback.ga, MAX_LINES), array(fallback.seats, MAX_SEATS)
if not fb_ga or not fb_seats then return refuse('bad_input', {argument = 'items'}) end
for _, item in ipairs(fb_ga) do
  if type(item) ~= 'table' or not int_in(item[1], 1, MAX_ID) or not int_in(item[2], 1, MAX_QTY)
     or not int_in(item[3], 0, MAX_ID) then
    return refuse('bad_input', {argument = 'items'})
  end
end
local seen = {}
for _, seat in ipairs(fb_seats) do
  if type(seat) ~= 'table' or not int_in(seat[1], 1, MAX_ID) or not int_in(seat[2], 1, MAX_ID)
     or not int_in(seat[3], 0, MAX_ID) or seen[seat[1]] then
    return refuse('bad_input', {argument = 'items'})
  end
  seen[seat[1]] = true
end

local done = redis.call('HGET', K.sales, order_no)
if done then
  local sale = cjson.decode(done)
  if sale.hold ~= hold_id then return refuse('order_number_taken', {order = order_no}) end
  if sale.state ~= 'sold' then return refuse('refunded', {order = order_no}) end
  return cjson.encode({ok = true, sale = sale, replay = true})
end
-- one hold is one sale: a second order number for the same hold is refused (the caller refunds)
local sold_as = redis.call('HGET', K.sales, 'hold:' .. hold_id)
if sold_as then return refuse('hold_already_sold', {order = sold_as}) end

local now = now_ms()
local status, _, buyer_cap = event_meta()
if status == 'restoring' and not restore then return refuse('restoring') end
local raw = redis.call('HGET', K.holds, hold_id)
local hold, retaken
-- the live hold must be the basket the order was made for: a hold id can come back (the same
-- Idempotency-Key after the first hold was given back) with other tickets in it
local function same_basket(h)
  local want, have = {}, {}
  for _, item in ipairs(fb_ga) do want['g' .. item[1]] = (want['g' .. item[1]] or 0) + item[2] end
  for _, seat in ipairs(fb_seats) do want['s' .. seat[1]] = 1 end
  for _, item in ipairs(h.ga or {}) do have['g' .. item[1]] = (have['g' .. item[1]] or 0) + item[2] end
  for _, seat in ipairs(h.seats or {}) do have['s' .. seat[1]] = 1 end
  for k, v in pairs(want) do if have[k] ~= v then return false end end
  for k, v in pairs(have) do if want[k] ~= v then return false end end
  return true
end
if raw and cjson.decode(raw).expires > now then
  hold = cjson.decode(raw)
  if hold.buyer ~= buyer then return refuse('not_owner') end
  if not same_basket(hold) then return refuse('hold_changed') end
  if not restore and status ~= 'on_sale' and status ~= 'paused' then
    return refuse('not_on_sale', {status = status or 'closed'})
  end
  for _, line in ipairs(hold.lines) do
    local pid = tostring(line[1])
    bump(pid, 'held', -line[2])
    bump(pid, 'sold', line[2])
  end
  forget_basket(hold)
  redis.call('HDEL', K.holds, hold_id)
  redis.call('ZREM', K.expiry, hold_id)
  retaken = false
else
  if raw then  -- lapsed but not yet swept: give it back first, then decide as for a late payment
    local lapsed = cjson.decode(raw)
    if lapsed.buyer ~= buyer then return refuse('not_owner') end
    drop_hold(lapsed)
  end
  if status ~= 'on_sale' and not (restore and status) then
    return refuse('not_on_sale', {status = status or 'closed'})
  end
  local want, order, lines = {}, {}, {}
  local function add(pid, qty)
    if not want[pid] then want[pid] = 0; order[#order + 1] = pid end
    want[pid] = want[pid] + qty
  end
  for _, item in ipairs(fb_ga) do
    local conf = package_conf(item[1])
    if not conf then return refuse('unknown_package', {package_id = item[1]}) end
    if conf.seated == 1 then return refuse('seat_required', {package_id = item[1]}) end
    add(item[1], item[2])
  end
  local taken = {}
  for _, seat in ipairs(fb_seats) do
    local info = redis.call('HGET', K.seatinfo, tostring(seat[1]))
    if not info or cjson.decode(info).p ~= seat[2] then  -- a seat counts in its own package
      return refuse('unknown_seat', {seat_ids = {seat[1]}})
    end
    local state = redis.call('HGET', K.seats, tostring(seat[1]))
    if restore and state and string.sub(state, 1, 2) == 'h:' then
      local other = redis.call('HGET', K.holds, string.sub(state, 3))
      if other then drop_hold(cjson.decode(other)) end  -- the record's sale comes first
      state = redis.call('HGET', K.seats, tostring(seat[1]))
    end
    if state ~= 'a' then taken[#taken + 1] = seat[1] end
    add(seat[2], 1)
  end
  if #order == 0 then return refuse('bad_input', {argument = 'items'}) end
  if #taken > 0 then return refuse('stock_gone', {seat_ids = taken}) end
  for _, pid in ipairs(order) do lines[#lines + 1] = {pid, want[pid]} end
  if not restore then
    local refused = check_take(lines, buyer, now, true, buyer_cap)
    if refused then return refused end
  else
    -- the record's sale comes first: live holds (the newest first) give back what it needs
    for _, line in ipairs(lines) do
      local pid = tostring(line[1])
      local function avail() return tonumber(redis.call('HGET', K.stock, pid .. ':avail') or '0') end
      if avail() < line[2] then
        for _, other_id in ipairs(redis.call('ZREVRANGE', K.expiry, 0, -1)) do
          if avail() >= line[2] then break end
          local other = redis.call('HGET', K.holds, other_id)
          if other then
            other = cjson.decode(other)
            for _, l in ipairs(other.lines) do
              if tostring(l[1]) == pid then drop_hold(other); break end
            end
          end
        end
      end
    end
  end
  for _, line in ipairs(lines) do
    local avail = tonumber(redis.call('HGET', K.stock, line[1] .. ':avail') or '0')
    if avail < line[2] then return refuse('stock_gone', {package_id = line[1], available = avail}) end
  end
  take(lines, 'sold', buyer)
  hold = {id = hold_id, buyer = buyer, lines = lines, ga = fb_ga, seats = fb_seats}
  retaken = true
end

for _, seat in ipairs(hold.seats or {}) do
  redis.call('HSET', K.seats, tostring(seat[1]), 's:' .. order_no)
end
local sale = {order = order_no, hold = hold_id, buyer = buyer, lines = hold.lines, ga = hold.ga,
              seats = hold.seats, at = now, state = 'sold'}
redis.call('HSET', K.sales, order_no, cjson.encode(sale), 'hold:' .. hold_id, order_no)
redis.call('XADD', K.orders, '*', 'type', 'sale', 'order', order_no, 'sale', cjson.encode(sale),
           'extra', extra)
return cjson.encode({ok = true, sale = sale, retaken = retaken})
