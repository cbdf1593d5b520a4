-- load_stock: bring an event's packages and seats in step with the catalog. Never overwrites live
-- counters: a raised capacity adds stock, a capacity below what is held + sold is refused, seats
-- already loaded keep their live state (only blocks change), new seats are added.
--
-- Two modes, so that the stock on sale never exceeds what Postgres has committed:
-- * "narrow" runs inside the catalog's transaction, before its commit. It applies only what takes
--   stock off sale (lower capacities, blocked seats, a stricter status, window or limit) and marks
--   the event `pending`; what would put more on sale waits. It refuses, so that the transaction
--   rolls back, what cannot be done (a capacity below what is held + sold, blocking a held or sold
--   seat, seats for a package already sold by quantity). An event not loaded yet is left alone.
-- * "full" runs after the commit (and at start-up and reconciliation) from the committed catalog:
--   everything is applied, blocked and unblocked seats included; the call marked final records
--   the catalog version and clears `pending`.
-- Large seat maps come in several calls (at most 2000 seats each); only the last is final.
-- KEYS[1..11] the event keys of includes/common.lua; KEYS[12] the seat layout (zset: seat id ->
--         section_rank * 1e10 + row_rank * 1e5 + column), KEYS[13] section id -> section rank
--         (both for best_available.lua; written by full loads)
-- ARGV[1] JSON {mode, version, final, status (on_sale | paused | closed | restoring), currency,
--         guests, buyer_cap,
--         packages = [{id, capacity, sold, price, min, max, limit, opens, closes, active, seated}],
--         sections = [[section id, rank], ...],
--         seats = [{id, p, price, state, r = row rank, c = column}]}
--         (times in ms since the epoch, 0 for none; seat state available | blocked | sold)
-- A package sold by quantity that gains seats becomes seated only while nothing of it is held or
-- sold. Tickets taken back without restock (unsell) stay withdrawn: "<pid>:withdrawn" is
-- subtracted from the catalog capacity at every load.
-- returns JSON {ok = true, seats_added = n, conflicts = [seat ids the catalog blocks but a buyer
--         holds or bought], skipped = bool} or {ok = false, reason = 'capacity_below_committed' |
--         'package_sold_by_quantity' | 'seat_unavailable' | 'bad_input', ...}
--- @include "common"

-- `restoring`: loaded from the record after Redis lost the event, its sales not yet re-applied
-- (engine/onsale.py); nothing is held or sold until open_stock.lua opens it. The strictest: a
-- narrowing load never lifts it.
local STATUS_RANK = {on_sale = 0, paused = 1, closed = 2, restoring = 3}
local data = json_of(ARGV[1])
local function bad(what) return refuse('bad_input', {argument = what}) end
if not data then return bad('payload') end
if #KEYS ~= 13 then return bad('keys') end
local narrow = data.mode == 'narrow'
if not narrow and data.mode ~= 'full' then return bad('mode') end
if not int_in(data.version, 0, MAX_ID) or not STATUS_RANK[data.status]
   or not text(data.currency, 3, '^%u%u%u$') or not int_in(data.guests, 0, 1)
   or not int_in(data.buyer_cap, 0, 1000000) or type(data.final) ~= 'boolean' then
  return bad('event')
end
local packages, seats = array(data.packages, 500), array(data.seats, 2000)
local sections = array(data.sections, 1000)
if not packages or not seats or not sections then return bad('too many packages or seats in one call') end
for _, sec in ipairs(sections) do
  if type(sec) ~= 'table' or not int_in(sec[1], 1, MAX_ID) or not int_in(sec[2], 1, 99999) then
    return bad('section')
  end
end
for _, p in ipairs(packages) do
  if type(p) ~= 'table' or not int_in(p.id, 1, MAX_ID) or not int_in(p.capacity, 0, 1000000000)
     or not int_in(p.sold, 0, 1000000000) or not int_in(p.price, 0, MAX_ID)
     or not int_in(p.min, 1, 1000000) or not int_in(p.max, 1, 1000000)
     or not int_in(p.limit, 0, 1000000) or not int_in(p.opens, 0, MAX_ID)
     or not int_in(p.closes, 0, MAX_ID) or not int_in(p.active, 0, 1) or not int_in(p.seated, 0, 1) then
    return bad('package')
  end
end
local seen = {}
for _, s in ipairs(seats) do
  if type(s) ~= 'table' or not int_in(s.id, 1, MAX_ID) or not int_in(s.p, 1, MAX_ID)
     or not int_in(s.price, 0, MAX_ID) or seen[s.id] or not int_in(s.s or 0, 0, 99999)
     or not int_in(s.r or 0, 0, 99999) or not int_in(s.c or 0, 0, 99999)
     or (s.state ~= 'available' and s.state ~= 'blocked' and s.state ~= 'sold') then
    return bad('seat')
  end
  seen[s.id] = true
end

local current_status = redis.call('HGET', K.meta, 'status')
if narrow and not current_status then return cjson.encode({ok = true, skipped = true, seats_added = 0}) end

local function committed_of(pid)
  return tonumber(redis.call('HGET', K.stock, pid .. ':held'))
       + tonumber(redis.call('HGET', K.stock, pid .. ':sold'))
end
local function withdrawn_of(pid)
  return tonumber(redis.call('HGET', K.stock, pid .. ':withdrawn') or '0')
end
local function effective(p)
  return math.max(0, p.capacity - withdrawn_of(tostring(p.id)))
end

-- checks, before anything is written
for _, p in ipairs(packages) do
  local pid = tostring(p.id)
  local conf = package_conf(pid)
  if conf then
    local committed = committed_of(pid)
    if p.seated ~= 1 and conf.seated ~= 1 and effective(p) < committed then
      return refuse('capacity_below_committed', {package_id = p.id, committed = committed})
    end
    if narrow and p.seated == 1 and conf.seated ~= 1 and committed > 0 then
      return refuse('package_sold_by_quantity', {package_id = p.id, committed = committed})
    end
    if conf.seated == 1 and p.seated ~= 1 then return bad('a seated package stays seated') end
  end
end
-- a seat belongs to a seated package of this load or already loaded, and never changes package
local seated_here = {}
for _, p in ipairs(packages) do
  if p.seated == 1 then seated_here[tostring(p.id)] = true end
end
for _, s in ipairs(seats) do
  local pid = tostring(s.p)
  local conf = package_conf(pid)
  if not seated_here[pid] and not (conf and conf.seated == 1) then return bad('seat package') end
  local info = redis.call('HGET', K.seatinfo, tostring(s.id))
  if info and tostring(cjson.decode(info).p) ~= pid then return bad('seat package') end
end
local busy = {}
for _, s in ipairs(seats) do
  local state = redis.call('HGET', K.seats, tostring(s.id))
  if s.state == 'blocked' and state and state ~= 'a' and state ~= 'b' and state ~= 'x' then
    busy[#busy + 1] = s.id
  end
end
if narrow and #busy > 0 then return refuse('seat_unavailable', {seat_ids = busy}) end

-- event
local function stricter_cap(a, b)
  if a == 0 then return b end
  if b == 0 then return a end
  return math.min(a, b)
end
if narrow then
  -- a cancel or completion stops the sale at once but gives the holds back only once committed
  -- (the full load): a commit that fails must not have cost the buyers their baskets
  local status = data.status == 'closed' and 'paused' or data.status
  if STATUS_RANK[status] > STATUS_RANK[current_status] then
    redis.call('HSET', K.meta, 'status', status)
  end
  if data.guests == 0 then redis.call('HSET', K.meta, 'guests', 0) end
  local cap = tonumber(redis.call('HGET', K.meta, 'buyer_cap') or '0')
  redis.call('HSET', K.meta, 'buyer_cap', stricter_cap(cap, data.buyer_cap), 'pending', 1)
else
  redis.call('HSET', K.meta, 'status', data.status, 'currency', data.currency,
             'guests', data.guests, 'buyer_cap', data.buyer_cap)
end

-- packages
local function later(a, b) return math.max(a, b) end  -- 0 (no opening time) is the earliest
local function sooner(a, b)                           -- 0 (no closing time) is the latest
  if a == 0 then return b end
  if b == 0 then return a end
  return math.min(a, b)
end
for _, p in ipairs(packages) do
  local pid = tostring(p.id)
  local conf = package_conf(pid)
  if narrow then
    if conf then
      -- gaining seats: no more quantity holds from now until the full load makes it seated
      conf.active = (p.seated == 1 and conf.seated ~= 1) and 0 or math.min(conf.active, p.active)
      conf.opens = later(conf.opens, p.opens)
      conf.closes = sooner(conf.closes, p.closes)
      conf.min = math.max(conf.min, p.min)
      conf.max = math.min(conf.max, p.max)
      conf.limit = stricter_cap(conf.limit, p.limit)
      redis.call('HSET', K.pkgs, pid, cjson.encode(conf))
      conf_cache[pid] = conf
      local cap = tonumber(redis.call('HGET', K.stock, pid .. ':cap'))
      if conf.seated ~= 1 and p.seated ~= 1 and effective(p) < cap then
        bump(pid, 'cap', effective(p) - cap)
        bump(pid, 'avail', effective(p) - cap)
      end
    end
  else
    if conf and p.seated == 1 and conf.seated ~= 1 then
      if committed_of(pid) > 0 then
        -- tickets of it were held or sold by quantity meanwhile: it stays a quantity package and
        -- its seats stay off sale (reported), rather than every later load being refused; its
        -- capacity never goes below what buyers hold and bought (a seated package's quantity
        -- capacity in the catalog may be anything, 0 say)
        p.seated = 0
        p.keep_committed = true
      else
        -- becoming seated with nothing held or sold: its quantity stock gives way to its seats
        redis.call('HSET', K.stock, pid .. ':cap', 0, pid .. ':avail', 0)
      end
    end
    local written = {price = p.price, min = p.min, max = p.max, limit = p.limit, opens = p.opens,
                     closes = p.closes, active = p.active, seated = p.seated}
    redis.call('HSET', K.pkgs, pid, cjson.encode(written))
    conf_cache[pid] = written
    if not conf then
      local cap = p.seated == 1 and 0 or p.capacity
      local sold = p.seated == 1 and 0 or math.min(p.sold, cap)
      redis.call('HSET', K.stock, pid .. ':cap', cap, pid .. ':avail', cap - sold,
                 pid .. ':held', 0, pid .. ':sold', sold)
    elseif p.seated ~= 1 then
      local target = effective(p)
      if p.keep_committed then target = math.max(target, committed_of(pid)) end
      local delta = target - tonumber(redis.call('HGET', K.stock, pid .. ':cap'))
      if delta ~= 0 then
        bump(pid, 'cap', delta)
        bump(pid, 'avail', delta)
      end
    end
  end
end

-- seats
if not narrow then
  for _, sec in ipairs(sections) do redis.call('HSET', KEYS[13], tostring(sec[1]), sec[2]) end
end
local added = 0
for _, s in ipairs(seats) do
  local sid, pid = tostring(s.id), tostring(s.p)
  local state = redis.call('HGET', K.seats, sid)
  local conf = package_conf(pid)
  if not narrow and not (conf and conf.seated == 1) then
    -- its package stayed a quantity package (tickets of it went by quantity): off sale, reported
    busy[#busy + 1] = s.id
  elseif state == 'a' and s.state == 'blocked' then
    redis.call('HSET', K.seats, sid, 'b')
    bump(pid, 'cap', -1)
    bump(pid, 'avail', -1)
  elseif state == 'b' and s.state == 'available' and not narrow then
    redis.call('HSET', K.seats, sid, 'a')
    bump(pid, 'cap', 1)
    bump(pid, 'avail', 1)
  end
  if not narrow and conf and conf.seated == 1 then
    redis.call('HSET', K.seatinfo, sid, cjson.encode({p = s.p, price = s.price}))
    redis.call('ZADD', KEYS[12], (s.s or 0) * 1e10 + (s.r or 0) * 1e5 + (s.c or 0), sid)
    if not state then
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
end
if data.final and not narrow then
  redis.call('HSET', K.meta, 'version', data.version)
  redis.call('HDEL', K.meta, 'pending')
end
return cjson.encode({ok = true, seats_added = added, conflicts = busy, skipped = false})
