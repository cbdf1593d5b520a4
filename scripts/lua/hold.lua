-- hold: take general-admission quantities and/or specific seats for one buyer, all or nothing.
-- A buyer has at most one live hold (basket) per event; the buyer's tickets in the event (held
-- and bought, all packages) stay within the event's buyer_cap and each package's limit.
-- KEYS[1..11] the event keys of includes/common.lua
-- KEYS[12] the buyer's hold-rate limit, KEYS[13] the client address's hold-rate limit,
-- KEYS[14] the client address's new-guest limit (all of this event, see includes/ratelimit.lua)
-- ARGV[1] hold id `H<event>-<token>` (chosen by the caller; a retry with the same id and buyer
--         returns the same hold; an id already sold answers hold_already_sold)
-- ARGV[2] buyer key (`u:<user id>` or `g:<guest id>`)
-- ARGV[3] time to live, ms
-- ARGV[4] JSON {"ga": [[package_id, quantity], ...], "seats": [seat_id, ...]}
-- ARGV[5] how many due holds to expire first (lazy expiry)
-- ARGV[6] JSON {"buyer": [burst, per_minute], "ip": [...], "guest": [...]} (burst 0: no limit)
-- ARGV[7] "1" when the buyer is a guest identity minted for this request (passes KEYS[14] too)
-- returns JSON {ok = true, hold = {...}, replay = bool} or {ok = false, reason = ..., ...details};
-- invalid arguments answer reason 'bad_input' before anything is written.
--- @include "common"
--- @include "ratelimit"

local hold_id = text(ARGV[1], 64, HOLD_ID)
local buyer = text(ARGV[2], 100, BUYER)
local ttl = int_in(ARGV[3], 1000, 86400000)
local request = json_of(ARGV[4])
local expire_first = int_in(ARGV[5], 0, 100)
local limits = json_of(ARGV[6])
local new_guest = ARGV[7] == '1'
if not (hold_id and buyer and ttl and request and expire_first and limits) then
  return refuse('bad_input', {argument = 'hold arguments'})
end
local ga_in, seats_in = array(request.ga, MAX_LINES), seat_list(request.seats)
if not ga_in or not seats_in then return refuse('bad_input', {argument = 'selection'}) end
local ga_seen = {}
for _, item in ipairs(ga_in) do
  if type(item) ~= 'table' or not int_in(item[1], 1, MAX_ID) or not int_in(item[2], 1, MAX_QTY)
     or ga_seen[item[1]] then
    return refuse('bad_input', {argument = 'selection'})
  end
  ga_seen[item[1]] = true
end
local buckets = {}
for i, scope in ipairs({'buyer', 'ip', 'guest'}) do
  local conf = limits[scope] or {0, 1}
  local burst, per_minute = int_in(conf[1], 0, 1000000), int_in(conf[2], 1, 60000000)
  if not burst or not per_minute then return refuse('bad_input', {argument = 'limits'}) end
  if scope ~= 'guest' or new_guest then buckets[#buckets + 1] = {KEYS[11 + i], burst, per_minute} end
end

local now = now_ms()
local status, guests, buyer_cap = event_meta()
expire_due(now, expire_first, status)

local existing = redis.call('HGET', K.holds, hold_id)
if existing then
  local hold = cjson.decode(existing)
  if hold.buyer ~= buyer then return refuse('hold_id_taken') end
  return cjson.encode({ok = true, hold = hold, replay = true})
end
local sold_as = redis.call('HGET', K.sales, 'hold:' .. hold_id)
if sold_as then return refuse('hold_already_sold', {order = sold_as}) end

local wait = take_tokens(buckets, now)
if wait > 0 then return refuse('rate_limited', {retry_after_ms = wait}) end

if not status then return refuse('not_loaded') end
if status ~= 'on_sale' then return refuse('not_on_sale', {status = status}) end
if not guests and string.sub(buyer, 1, 2) == 'g:' then return refuse('login_required') end
local basket = redis.call('HGET', K.baskets, buyer)
if basket then
  if redis.call('HEXISTS', K.holds, basket) == 1 then
    return refuse('basket_exists', {hold_id = basket})
  end
  redis.call('HDEL', K.baskets, buyer)
end

local want, order = {}, {}
local function add(pid, qty)
  if not want[pid] then
    want[pid] = 0
    order[#order + 1] = pid
  end
  want[pid] = want[pid] + qty
end

local ga = {}
for _, item in ipairs(ga_in) do
  local conf = package_conf(item[1])
  if not conf then return refuse('unknown_package', {package_id = item[1]}) end
  if conf.seated == 1 then return refuse('seat_required', {package_id = item[1]}) end
  add(item[1], item[2])
  ga[#ga + 1] = {item[1], item[2], conf.price}
end

local seats, unavailable, unknown = {}, {}, {}
for _, seat in ipairs(seats_in) do
  local sid = tostring(seat)
  local info = redis.call('HGET', K.seatinfo, sid)
  if not info then
    unknown[#unknown + 1] = seat
  elseif redis.call('HGET', K.seats, sid) ~= 'a' then
    unavailable[#unavailable + 1] = seat
  else
    info = cjson.decode(info)
    add(info.p, 1)
    seats[#seats + 1] = {seat, info.p, info.price}
  end
end
if #unknown > 0 then return refuse('unknown_seat', {seat_ids = unknown}) end
if #unavailable > 0 then return refuse('seat_unavailable', {seat_ids = unavailable}) end
if #order == 0 then return refuse('empty') end

local lines = {}
for _, pid in ipairs(order) do lines[#lines + 1] = {pid, want[pid]} end
local refused = check_take(lines, buyer, now, true, buyer_cap)
if refused then return refused end
for _, line in ipairs(lines) do
  local avail = tonumber(redis.call('HGET', K.stock, line[1] .. ':avail') or '0')
  if avail < line[2] then
    if avail <= 0 then return refuse('sold_out', {package_id = line[1]}) end
    return refuse('not_enough', {package_id = line[1], available = avail})
  end
end

take(lines, 'held', buyer)
for _, seat in ipairs(seats) do
  redis.call('HSET', K.seats, tostring(seat[1]), 'h:' .. hold_id)
end

local hold = {id = hold_id, buyer = buyer, created = now, expires = now + ttl,
              lines = lines, ga = ga, seats = seats}
redis.call('HSET', K.holds, hold_id, cjson.encode(hold))
redis.call('ZADD', K.expiry, hold.expires, hold_id)
redis.call('HSET', K.baskets, buyer, hold_id)
return cjson.encode({ok = true, hold = hold})
