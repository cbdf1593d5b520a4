-- unsell: a refunded or cancelled sale gives its tickets back. With restock, the stock and seats
-- return to sale; without, the capacity shrinks and the seats are withdrawn ("x": counted in no
-- package, never unblocked by a catalog load). Idempotent.
-- KEYS   the eleven event keys of includes/common.lua
-- ARGV[1] order number
-- ARGV[2] "1" to put the tickets back on sale, "0" not to
-- returns JSON {ok = true, replay = bool} or {ok = false, reason = 'unknown_order' | 'bad_input'}
--- @include "common"

local order_no = text(ARGV[1], 64, '^[%w_%-]+$')
if not order_no or (ARGV[2] ~= '1' and ARGV[2] ~= '0') then
  return refuse('bad_input', {argument = 'unsell arguments'})
end
local restock = ARGV[2] == '1'
local raw = redis.call('HGET', K.sales, order_no)
if not raw then return refuse('unknown_order') end
local sale = cjson.decode(raw)
if sale.state ~= 'sold' then return cjson.encode({ok = true, replay = true}) end
for _, line in ipairs(sale.lines) do
  local pid, qty = tostring(line[1]), line[2]
  bump(pid, 'sold', -qty)
  if restock then
    bump(pid, 'avail', qty)
  else
    bump(pid, 'cap', -qty)
    local conf = package_conf(pid)
    if not (conf and conf.seated == 1) then
      bump(pid, 'withdrawn', qty)  -- remembered by load_stock; withdrawn seats are marked instead
    end
  end
  bump_buyer(sale.buyer, pid, -qty)
end
local mine = 's:' .. order_no
for _, seat in ipairs(sale.seats or {}) do
  local sid = tostring(seat[1])
  if redis.call('HGET', K.seats, sid) == mine then
    redis.call('HSET', K.seats, sid, restock and 'a' or 'x')
  end
end
sale.state = 'refunded'
sale.restocked = restock
redis.call('HSET', K.sales, order_no, cjson.encode(sale))
return cjson.encode({ok = true, replay = false})
