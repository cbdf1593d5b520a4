-- load_stock: load (or refresh) an event's packages and seats from the catalog. Idempotent; never
-- overwrites live counters: a raised capacity adds stock, a capacity below what is held + sold
-- is refused, seats already loaded keep their live state, new seats are added.
-- KEYS   the ten event keys of includes/common.lua
-- ARGV[1] JSON {status, currency, packages = [{id, capacity, sold, price, min, max, limit,
--         opens, closes, active, seated}], seats = [{id, p, price, state}]}
--         (times in ms since the epoch, 0 for none; seat state available | blocked | sold)
-- A package sold by quantity that gains seats becomes seated only while nothing of it is held or
-- sold. Tickets taken back without restock (unsell) stay withdrawn: "<pid>:withdrawn" is
-- subtracted from the catalog capacity at every load.
-- returns JSON {ok = true, packages = n, seats_added = n} or {ok = false, reason =
--         'capacity_below_committed' | 'package_sold_by_quantity', package_id, committed}
--- @include "common"

local data = cjson.decode(ARGV[1])

local function committed_of(pid)
  return tonumber(redis.call('HGET', K.stock, pid .. ':held'))
       + tonumber(redis.call('HGET', K.stock, pid .. ':sold'))
end
local function withdrawn_of(pid)
  return tonumber(redis.call('HGET', K.stock, pid .. ':withdrawn') or '0')
end
local function was_seated(pid)
  local raw = redis.call('HGET', K.pkgs, pid)
  return raw and cjson.decode(raw).seated == 1
end

for _, p in ipairs(data.packages) do
  local pid = tostring(p.id)
  if redis.call('HEXISTS', K.stock, pid .. ':cap') == 1 then
    local committed = committed_of(pid)
    if p.seated ~= 1 and math.max(0, p.capacity - withdrawn_of(pid)) < committed then
      return refuse('capacity_below_committed', {package_id = p.id, committed = committed})
    end
    if p.seated == 1 and not was_seated(pid) and committed > 0 then
      return refuse('package_sold_by_quantity', {package_id = p.id, committed = committed})
    end
  end
end

redis.call('HSET', K.meta, 'status', data.status, 'currency', data.currency)
for _, p in ipairs(data.packages) do
  local pid = tostring(p.id)
  local known = redis.call('HEXISTS', K.stock, pid .. ':cap') == 1
  if known and p.seated == 1 and not was_seated(pid) then
    -- becoming seated with nothing held or sold: its quantity stock gives way to its seats
    redis.call('HSET', K.stock, pid .. ':cap', 0, pid .. ':avail', 0)
  end
  redis.call('HSET', K.pkgs, pid, cjson.encode({price = p.price, min = p.min, max = p.max,
    limit = p.limit, opens = p.opens, closes = p.closes, active = p.active, seated = p.seated}))
  if not known then
    local cap = p.seated == 1 and 0 or p.capacity
    local sold = p.seated == 1 and 0 or math.min(p.sold, cap)
    redis.call('HSET', K.stock, pid .. ':cap', cap, pid .. ':avail', cap - sold,
               pid .. ':held', 0, pid .. ':sold', sold)
  elseif p.seated ~= 1 then
    local delta = math.max(0, p.capacity - withdrawn_of(pid))
                - tonumber(redis.call('HGET', K.stock, pid .. ':cap'))
    if delta ~= 0 then
      bump(pid, 'cap', delta)
      bump(pid, 'avail', delta)
    end
  end
end

local added = 0
for _, s in ipairs(data.seats) do
  local sid = tostring(s.id)
  redis.call('HSET', K.seatinfo, sid, cjson.encode({p = s.p, price = s.price}))
  if redis.call('HEXISTS', K.seats, sid) == 0 then
    local pid = tostring(s.p)
    if s.state == 'blocked' then
      redis.call('HSET', K.seats, sid, 'b')
    elseif s.state == 'sold' then
      redis.call('HSET', K.seats, sid, 's:catalog')
      bump(pid, 'cap', 1)
      bump(pid, 'sold', 1)
    else
      redis.call('HSET', K.seats, sid, 'a')
      bump(pid, 'cap', 1)
      bump(pid, 'avail', 1)
    end
    added = added + 1
  end
end
return cjson.encode({ok = true, packages = #data.packages, seats_added = added})
