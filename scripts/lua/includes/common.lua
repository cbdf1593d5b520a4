-- Shared helpers, pasted by the loader where a script says `--- @include "common"`.
-- Every event script receives the same eleven keys first, all carrying the event's hash tag:
local K = {
  meta = KEYS[1],      -- hash: status (on_sale | paused | closed | restoring), currency, guests (1 | 0),
                       --       buyer_cap (tickets per buyer for the event, 0 = none),
                       --       version (catalog version loaded), pending (a narrowing load ran)
  pkgs = KEYS[2],      -- hash: package id -> JSON {price, min, max, limit, opens, closes, active, seated}
  stock = KEYS[3],     -- hash: "<pid>:cap" "<pid>:avail" "<pid>:held" "<pid>:sold" ("<pid>:withdrawn")
  seats = KEYS[4],     -- hash: seat id -> "a" available | "b" blocked | "x" withdrawn | "h:<hold>" | "s:<order>"
  seatinfo = KEYS[5],  -- hash: seat id -> JSON {p = package id, price}
  holds = KEYS[6],     -- hash: hold id -> JSON hold
  expiry = KEYS[7],    -- zset: hold id scored by expiry (ms)
  buyers = KEYS[8],    -- hash: "<buyer>|<pid>" and "<buyer>|*" -> tickets in live holds and sales;
                       --       "<buyer>|b" -> the id of the buyer's one live hold (basket)
  sales = KEYS[9],     -- hash: order number -> JSON sale; "hold:<hold id>" -> order number
  orders = KEYS[10],   -- stream: one entry per confirmed sale
  limits = KEYS[11],   -- hash: the hold rate limits' state (includes/ratelimit.lua): "b:<buyer>",
                       --       "ip:<address>", "new:<address>" -> theoretical arrival time (ms)
}

-- Bounds on one call's work: no call can keep Redis busy for long.
local MAX_LINES = 50      -- package lines in one hold
local MAX_SEATS = 100     -- seats in one hold
local MAX_QTY = 1000      -- tickets of one package in one hold
local MAX_ID = 99999999999999  -- ids Lua prints exactly (%.14g) and cjson encodes exactly

-- The server's clock in ms, read once per call (a script runs at one instant).
local clock
local function now_ms()
  if not clock then
    local t = redis.call('TIME')
    clock = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return clock
end

local function refuse(reason, detail)
  local out = detail or {}
  out.ok = false
  out.reason = reason
  return cjson.encode(out)
end

-- Input checks: each returns the value, or nil when it is not what the contract says.
local function int_in(value, lo, hi)
  local n = tonumber(value)
  if type(value) == 'string' and not string.match(value, '^%-?%d+$') then return nil end
  if n == nil or n ~= math.floor(n) or n < lo or n > hi then return nil end
  return n
end

local function text(value, max_len, pattern)
  if type(value) ~= 'string' or #value == 0 or #value > max_len then return nil end
  if pattern and not string.match(value, pattern) then return nil end
  return value
end

local function json_of(raw)
  local ok, value = pcall(cjson.decode, raw)
  if ok and type(value) == 'table' then return value end
  return nil
end

-- A JSON array (cjson decodes [] and {} alike) of at most `max` entries, else nil.
local function array(value, max)
  if value == nil then return {} end
  if type(value) ~= 'table' then return nil end
  local n = #value
  if n > max then return nil end
  for k, _ in pairs(value) do
    if type(k) ~= 'number' or k < 1 or k > n or k ~= math.floor(k) then return nil end
  end
  return value
end

-- Seat ids: an array of distinct positive integers, at most MAX_SEATS of them.
local function seat_list(value)
  local seats = array(value, MAX_SEATS)
  if not seats then return nil end
  local seen = {}
  for _, seat in ipairs(seats) do
    if not int_in(seat, 1, MAX_ID) or seen[seat] then return nil end
    seen[seat] = true
  end
  return seats
end

local HOLD_ID = '^H%d+%-[%w_%-]+$'
local BUYER = '^[%w_%-%.:]+$'  -- never '|': it separates buyer and package in K.buyers

local function bump(pid, field, by)
  return redis.call('HINCRBY', K.stock, pid .. ':' .. field, by)
end

local function bump_buyer(buyer, pid, by)
  for _, field in ipairs({buyer .. '|' .. pid, buyer .. '|*'}) do
    local n = redis.call('HINCRBY', K.buyers, field, by)
    if n <= 0 then redis.call('HDEL', K.buyers, field) end
  end
end

-- Tickets `buyer` has of package `pid` ('*': all packages), from `known` (pid -> count, as
-- read_buyer fills it) when it has the entry.
local function buyer_has(buyer, pid, known)
  local n = known and known[tostring(pid)]
  if n then return n end
  return tonumber(redis.call('HGET', K.buyers, buyer .. '|' .. pid) or '0')
end

-- The buyer's basket and counts of `pids` and '*' in one read: basket (or false), {pid -> count}.
local function read_buyer(buyer, pids)
  local fields = {buyer .. '|b', buyer .. '|*'}
  for _, pid in ipairs(pids) do fields[#fields + 1] = buyer .. '|' .. pid end
  local got = redis.call('HMGET', K.buyers, unpack(fields))
  local known = {['*'] = tonumber(got[2] or '0')}
  for i, pid in ipairs(pids) do known[tostring(pid)] = tonumber(got[i + 2] or '0') end
  return got[1], known
end

local conf_cache = {}
local function package_conf(pid)
  pid = tostring(pid)
  if conf_cache[pid] == nil then
    local raw = redis.call('HGET', K.pkgs, pid)
    conf_cache[pid] = raw and cjson.decode(raw) or false
  end
  return conf_cache[pid] or nil
end

-- The event's status, guest checkout (1 | 0) and buyer cap (0: none), in one read.
local function event_meta()
  local m = redis.call('HMGET', K.meta, 'status', 'guests', 'buyer_cap')
  return m[1], m[2] ~= '0', tonumber(m[3] or '0')
end

-- Can `buyer` take `lines` ({package, quantity} pairs) right now? nil when yes, else the refusal.
-- `sale_rules` false skips the sale window and order size (a live hold being paid for); `cap` is
-- the event's buyer cap (0: none); `known` the buyer's counts where already read (see buyer_has).
local function check_take(lines, buyer, now, sale_rules, cap, known)
  local total = 0
  for _, line in ipairs(lines) do
    local pid, qty = line[1], line[2]
    local conf = package_conf(pid)
    if not conf then return refuse('unknown_package', {package_id = pid}) end
    if sale_rules then
      if conf.active ~= 1 then return refuse('sale_closed', {package_id = pid}) end
      if conf.opens > 0 and now < conf.opens then
        return refuse('sale_not_open', {package_id = pid, opens_at = conf.opens})
      end
      if conf.closes > 0 and now >= conf.closes then return refuse('sale_closed', {package_id = pid}) end
      if qty < conf.min then return refuse('below_minimum', {package_id = pid, minimum = conf.min}) end
      if qty > conf.max then return refuse('above_maximum', {package_id = pid, maximum = conf.max}) end
    end
    if conf.limit > 0 then
      local have = buyer_has(buyer, pid, known)
      if have + qty > conf.limit then
        return refuse('limit_exceeded', {package_id = pid, limit = conf.limit, already = have})
      end
    end
    total = total + qty
  end
  if cap > 0 then
    local have = buyer_has(buyer, '*', known)
    if have + total > cap then
      return refuse('event_limit_exceeded', {limit = cap, already = have})
    end
  end
  return nil
end

-- Move `lines` ({package, quantity} pairs) out of available into `into` (held or sold) for buyer.
local function take(lines, into, buyer)
  for _, line in ipairs(lines) do
    local pid = tostring(line[1])
    bump(pid, 'avail', -line[2])
    bump(pid, into, line[2])
    bump_buyer(buyer, pid, line[2])
  end
end

-- The hold is over (bought, given back, expired): it is no longer its buyer's basket, and the
-- buyer's hold-rate state it carried (`rt`, see includes/holding.lua) goes back to K.limits
-- while it still means something.
local function forget_basket(hold)
  local field = hold.buyer .. '|b'
  if redis.call('HGET', K.buyers, field) == hold.id then redis.call('HDEL', K.buyers, field) end
  if type(hold.rt) == 'number' and hold.rt > now_ms() then
    redis.call('HSET', K.limits, 'b:' .. hold.buyer, hold.rt)
  end
end

-- Give back the stock and seats of a live hold and forget it.
local function drop_hold(hold)
  for _, line in ipairs(hold.lines) do
    local pid, qty = tostring(line[1]), line[2]
    bump(pid, 'held', -qty)
    bump(pid, 'avail', qty)
    bump_buyer(hold.buyer, pid, -qty)
  end
  local mine = 'h:' .. hold.id
  for _, seat in ipairs(hold.seats or {}) do
    local sid = tostring(seat[1])
    if redis.call('HGET', K.seats, sid) == mine then
      redis.call('HSET', K.seats, sid, 'a')
    end
  end
  forget_basket(hold)
  redis.call('HDEL', K.holds, hold.id)
  redis.call('ZREM', K.expiry, hold.id)
end

-- Expire up to `limit` holds whose time is up, and no more than about EXPIRE_WORK seats and lines
-- in one call (a call stays short whatever the holds hold); each is returned exactly once. When
-- the event is closed (cancelled or completed), every live hold is due.
local EXPIRE_WORK = 2000
local function expire_due(now, limit, status)
  local due
  if status == 'closed' then
    due = redis.call('ZRANGE', K.expiry, 0, limit - 1)
  else
    due = redis.call('ZRANGEBYSCORE', K.expiry, '-inf', now, 'LIMIT', 0, limit)
  end
  local done, work = 0, 0
  for _, hold_id in ipairs(due) do
    if work >= EXPIRE_WORK then break end
    local raw = redis.call('HGET', K.holds, hold_id)
    if raw then
      local hold = cjson.decode(raw)
      drop_hold(hold)
      work = work + #hold.lines + #(hold.seats or {})
    else
      redis.call('ZREM', K.expiry, hold_id)
    end
    done = done + 1
    work = work + 1
  end
  return done
end
