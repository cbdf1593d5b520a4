-- Making a hold, pasted by the loader where a script says `--- @include "holding"` (after common
-- and ratelimit). Shared by hold (the buyer names the tickets and seats) and best_available (the
-- script picks the seats). Arguments, as both scripts take them:
-- ARGV[1] hold id `H<event>-<token>` (chosen by the caller; a retry with the same id and buyer
--         returns the same hold; an id already sold answers hold_already_sold)
-- ARGV[2] buyer key (`u:<user id>` or `g:<guest id>`)
-- ARGV[3] time to live, ms
-- ARGV[5] how many due holds to expire first (lazy expiry)
-- ARGV[6] the limits, six whole numbers apart by one space: burst and per minute of holds per
--         buyer, of holds per client address, and of guests new to this event per client address
--         (a guest with no basket and no tickets here); a burst of 0: no limit. All in this
--         event, their state in K.limits. A request is refused when a limit has nothing left;
--         only a hold made spends from them (a refusal for the state of the sale costs nothing).
-- ARGV[7] the client address as the limits count it (1 to 100 characters)
-- ARGV[8] '1' when the hold id may have been used before (derived from an Idempotency-Key), '0'
--         for a fresh random id (no sale can have it: that read is skipped)

local LIMITS = '^(%d+) (%d+) (%d+) (%d+) (%d+) (%d+)$'

-- A limit {field, burst, per_minute} from two decimal strings, or nil when out of range.
local function limit_of(field, burst, per_minute)
  burst, per_minute = tonumber(burst), tonumber(per_minute)
  if burst > 1000000 or per_minute < 1 or per_minute > 60000000 then return nil end
  return {field, burst, per_minute}
end

-- The common arguments, checked; nil when any is malformed.
local function hold_args()
  local a = {hold_id = text(ARGV[1], 64, HOLD_ID), buyer = text(ARGV[2], 100, BUYER),
             ttl = int_in(ARGV[3], 1000, 86400000), expire_first = int_in(ARGV[5], 0, 100),
             client = text(ARGV[7], 100), keyed = ARGV[8] == '1'}
  if not (a.hold_id and a.buyer and a.ttl and a.expire_first and a.client)
     or (ARGV[8] ~= '0' and ARGV[8] ~= '1') or type(ARGV[6]) ~= 'string' then
    return nil
  end
  local b1, b2, i1, i2, n1, n2 = string.match(ARGV[6], LIMITS)
  if not b1 then return nil end
  a.buyer_limit = limit_of('b:' .. a.buyer, b1, b2)
  a.ip_limit = limit_of('ip:' .. a.client, i1, i2)
  a.new_limit = limit_of('new:' .. a.client, n1, n2)
  if not (a.buyer_limit and a.ip_limit and a.new_limit) then return nil end
  return a
end

-- Everything before choosing: lazy expiry, a retried hold id, the rate limits, the sale's state,
-- guests, the buyer's basket. `pids` are the packages the request names (the buyer's counts of
-- them are read with the basket). Returns the context to take a selection with, or nil and the
-- answer.
local function open_hold(a, pids)
  local now = now_ms()
  local status, guests, buyer_cap = event_meta()
  expire_due(now, a.expire_first, status)
  local existing = redis.call('HGET', K.holds, a.hold_id)
  if existing then
    local hold = cjson.decode(existing)
    if hold.buyer ~= a.buyer then return nil, refuse('hold_id_taken') end
    return nil, cjson.encode({ok = true, hold = hold, replay = true})
  end
  if a.keyed then  -- a fresh id cannot have been sold; a reused one may have been
    local sold_as = redis.call('HGET', K.sales, 'hold:' .. a.hold_id)
    if sold_as then return nil, refuse('hold_already_sold', {order = sold_as}) end
  end
  local basket, known = read_buyer(a.buyer, pids)
  local limits = {a.buyer_limit, a.ip_limit}
  if not basket and known['*'] == 0 and string.sub(a.buyer, 1, 2) == 'g:' then
    limits[3] = a.new_limit
  end
  local wait, by, spend = check_tokens_in(K.limits, limits, now)
  if wait > 0 then
    local scope = string.match(by, '^(%a+):')
    return nil, refuse('rate_limited', {retry_after_ms = wait, scope = scope})
  end
  if not status then return nil, refuse('not_loaded') end
  if status ~= 'on_sale' then return nil, refuse('not_on_sale', {status = status}) end
  if not guests and string.sub(a.buyer, 1, 2) == 'g:' then return nil, refuse('login_required') end
  if basket then
    if redis.call('HEXISTS', K.holds, basket) == 1 then
      return nil, refuse('basket_exists', {hold_id = basket})
    end
    redis.call('HDEL', K.buyers, a.buyer .. '|b')
  end
  return {now = now, buyer_cap = buyer_cap, known = known, spend = spend}
end

-- Take `ga_in` ({package, quantity} pairs) and `seats_in` (seat ids), both checked, for the buyer,
-- all or nothing; the answer as JSON.
local function take_selection(a, ctx, ga_in, seats_in)
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
  local unread = {}
  for _, line in ipairs(lines) do
    if not ctx.known[tostring(line[1])] then unread[#unread + 1] = line[1] end
  end
  if #unread > 0 then  -- packages of seats: not known before the seats were read
    local _, more = read_buyer(a.buyer, unread)
    for _, pid in ipairs(unread) do ctx.known[tostring(pid)] = more[tostring(pid)] end
  end
  local refused = check_take(lines, a.buyer, ctx.now, true, ctx.buyer_cap, ctx.known)
  if refused then return refused end
  local stock = {}
  for i, line in ipairs(lines) do
    local pid = tostring(line[1])
    local s = redis.call('HMGET', K.stock, pid .. ':avail', pid .. ':held')
    local avail = tonumber(s[1] or '0')
    if avail < line[2] then
      if avail <= 0 then return refuse('sold_out', {package_id = line[1]}) end
      return refuse('not_enough', {package_id = line[1], available = avail})
    end
    stock[i] = {avail, tonumber(s[2] or '0')}
  end

  -- all checked: take it (each counter written once, from what was read above)
  local total, counts = 0, {a.buyer .. '|b', a.hold_id}
  for i, line in ipairs(lines) do
    local pid, qty = tostring(line[1]), line[2]
    redis.call('HSET', K.stock, pid .. ':avail', stock[i][1] - qty, pid .. ':held', stock[i][2] + qty)
    counts[#counts + 1] = a.buyer .. '|' .. pid
    counts[#counts + 1] = ctx.known[pid] + qty
    total = total + qty
  end
  counts[#counts + 1] = a.buyer .. '|*'
  counts[#counts + 1] = ctx.known['*'] + total
  redis.call('HSET', K.buyers, unpack(counts))
  for _, seat in ipairs(seats) do
    redis.call('HSET', K.seats, tostring(seat[1]), 'h:' .. a.hold_id)
  end
  local hold = {id = a.hold_id, buyer = a.buyer, created = ctx.now, expires = ctx.now + a.ttl,
                lines = lines, ga = ga, seats = seats}
  -- the buyer's hold-rate state rides in the hold: while the basket lives the buyer cannot hold
  -- again anyway, and forget_basket puts it back in K.limits if it is still ahead then (a hold
  -- given back at once); most holds end long after it has passed, so most buyers cost no field
  local spend = ctx.spend
  if spend[1] == a.buyer_limit[1] then
    hold.rt = spend[2]
    spend = {unpack(spend, 3)}
  end
  local raw = cjson.encode(hold)
  redis.call('HSET', K.holds, a.hold_id, raw)
  redis.call('ZADD', K.expiry, hold.expires, a.hold_id)
  spend_tokens_in(K.limits, spend)
  return '{"ok":true,"hold":' .. raw .. '}'  -- the hold encoded once
end
