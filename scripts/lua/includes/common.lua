-- Shared helpers, pasted by the loader where a script says `--- @include "common"`.
-- Every event script receives the same ten keys, all carrying the event's hash tag:
local K = {
  meta = KEYS[1],      -- hash: status (on_sale | paused | closed), currency
  pkgs = KEYS[2],      -- hash: package id -> JSON {price, min, max, limit, opens, closes, active, seated}
  stock = KEYS[3],     -- hash: "<pid>:cap" "<pid>:avail" "<pid>:held" "<pid>:sold"
  seats = KEYS[4],     -- hash: seat id -> "a" available | "b" blocked | "h:<hold>" | "s:<order>"
  seatinfo = KEYS[5],  -- hash: seat id -> JSON {p = package id, price}
  holds = KEYS[6],     -- hash: hold id -> JSON hold
  expiry = KEYS[7],    -- zset: hold id scored by expiry (ms)
  buyers = KEYS[8],    -- hash: "<buyer>|<pid>" -> tickets in live holds and sales
  sales = KEYS[9],     -- hash: order number -> JSON sale
  orders = KEYS[10],   -- stream: one entry per confirmed sale
}

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function refuse(reason, detail)
  local out = detail or {}
  out.ok = false
  out.reason = reason
  return cjson.encode(out)
end

local function bump(pid, field, by)
  return redis.call('HINCRBY', K.stock, pid .. ':' .. field, by)
end

local function bump_buyer(buyer, pid, by)
  local n = redis.call('HINCRBY', K.buyers, buyer .. '|' .. pid, by)
  if n <= 0 then redis.call('HDEL', K.buyers, buyer .. '|' .. pid) end
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
  redis.call('HDEL', K.holds, hold.id)
  redis.call('ZREM', K.expiry, hold.id)
end

-- Expire up to `limit` holds whose time is up; each is returned exactly once.
local function expire_due(now, limit)
  local due = redis.call('ZRANGEBYSCORE', K.expiry, '-inf', now, 'LIMIT', 0, limit)
  for _, hold_id in ipairs(due) do
    local raw = redis.call('HGET', K.holds, hold_id)
    if raw then
      drop_hold(cjson.decode(raw))
    else
      redis.call('ZREM', K.expiry, hold_id)
    end
  end
  return #due
end
