-- hold: take general-admission quantities and/or specific seats for one buyer, all or nothing.
-- KEYS   the ten event keys of includes/common.lua
-- ARGV[1] hold id (chosen by the caller; a retry with the same id and buyer returns the same hold)
-- ARGV[2] buyer key
-- ARGV[3] time to live, ms
-- ARGV[4] JSON {"ga": [[package_id, quantity], ...], "seats": [seat_id, ...]}
-- ARGV[5] how many due holds to expire first (lazy expiry)
-- returns JSON {ok = true, hold = {...}} or {ok = false, reason = ..., ...details}
--- @include "common"

local hold_id, buyer, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local request = cjson.decode(ARGV[4])
local expire_first = tonumber(ARGV[5])
local now = now_ms()
expire_due(now, expire_first)

local existing = redis.call('HGET', K.holds, hold_id)
if existing then
  local hold = cjson.decode(existing)
  if hold.buyer ~= buyer then return refuse('hold_id_taken') end
  return cjson.encode({ok = true, hold = hold, replay = true})
end

local status = redis.call('HGET', K.meta, 'status')
if not status then return refuse('not_loaded') end
if status ~= 'on_sale' then return refuse('not_on_sale', {status = status}) end

local want, order, confs = {}, {}, {}
local function conf_of(pid)
  if confs[pid] == nil then
    local raw = redis.call('HGET', K.pkgs, pid)
    confs[pid] = raw and cjson.decode(raw) or false
  end
  return confs[pid]
end
local function add(pid, qty)
  if not want[pid] then
    want[pid] = 0
    order[#order + 1] = pid
  end
  want[pid] = want[pid] + qty
end

local ga = {}
for _, item in ipairs(request.ga or {}) do
  local pid, qty = tostring(item[1]), tonumber(item[2])
  local conf = conf_of(pid)
  if not conf then return refuse('unknown_package', {package_id = item[1]}) end
  if conf.seated == 1 then return refuse('seat_required', {package_id = item[1]}) end
  add(pid, qty)
  ga[#ga + 1] = {item[1], qty, conf.price}
end

local seats, unavailable, unknown = {}, {}, {}
for _, seat in ipairs(request.seats or {}) do
  local sid = tostring(seat)
  local info = redis.call('HGET', K.seatinfo, sid)
  if not info then
    unknown[#unknown + 1] = seat
  elseif redis.call('HGET', K.seats, sid) ~= 'a' then
    unavailable[#unavailable + 1] = seat
  else
    info = cjson.decode(info)
    add(tostring(info.p), 1)
    seats[#seats + 1] = {seat, info.p, info.price}
  end
end
if #unknown > 0 then return refuse('unknown_seat', {seat_ids = unknown}) end
if #unavailable > 0 then return refuse('seat_unavailable', {seat_ids = unavailable}) end
if #order == 0 then return refuse('empty') end

local lines = {}
for _, pid in ipairs(order) do
  local conf, qty = conf_of(pid), want[pid]
  local id = tonumber(pid)
  if conf.active ~= 1 then return refuse('sale_closed', {package_id = id}) end
  if conf.opens > 0 and now < conf.opens then
    return refuse('sale_not_open', {package_id = id, opens_at = conf.opens})
  end
  if conf.closes > 0 and now >= conf.closes then return refuse('sale_closed', {package_id = id}) end
  if qty < conf.min then return refuse('below_minimum', {package_id = id, minimum = conf.min}) end
  if qty > conf.max then return refuse('above_maximum', {package_id = id, maximum = conf.max}) end
  if conf.limit > 0 then
    local have = tonumber(redis.call('HGET', K.buyers, buyer .. '|' .. pid) or '0')
    if have + qty > conf.limit then
      return refuse('limit_exceeded', {package_id = id, limit = conf.limit, already = have})
    end
  end
  local avail = tonumber(redis.call('HGET', K.stock, pid .. ':avail') or '0')
  if avail < qty then
    if avail <= 0 then return refuse('sold_out', {package_id = id}) end
    return refuse('not_enough', {package_id = id, available = avail})
  end
  lines[#lines + 1] = {id, qty}
end

take(lines, 'held', buyer)
for _, seat in ipairs(seats) do
  redis.call('HSET', K.seats, tostring(seat[1]), 'h:' .. hold_id)
end

local hold = {id = hold_id, buyer = buyer, created = now, expires = now + ttl,
              lines = lines, ga = ga, seats = seats}
redis.call('HSET', K.holds, hold_id, cjson.encode(hold))
redis.call('ZADD', K.expiry, hold.expires, hold_id)
return cjson.encode({ok = true, hold = hold})
