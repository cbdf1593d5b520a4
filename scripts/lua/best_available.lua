-- best_available: hold the best run of `quantity` seats side by side, picked here, atomically.
-- The ranking rule: sections in the order of the seat map (their sort order, then the order they
-- were made: the map lists the ones nearest the stage first); within a section rows front to back
-- (A before B; the row order of the catalog); within a row the run of free seats, next to each
-- other, whose middle is nearest the middle of the row. The first row that has such a run wins:
-- a group is never split. With a price band, only seats whose price is inside it count. At most
-- 5,000 seats are looked at per call; past that the answer is no_adjacent_run like when none is.
-- KEYS[1..11] the event keys of includes/common.lua
-- KEYS[12] the seat layout: zset of seat ids scored section_rank * 1e10 + row_rank * 1e5 + column
-- KEYS[13] hash: section id -> section rank
-- ARGV[1..3], ARGV[5..8] as includes/holding.lua says (hold id, buyer, ttl; lazy expiry, limits,
--         client address, whether the hold id may have been used before)
-- ARGV[4] JSON {quantity, section = section id or 0 (any), price_min, price_max (0: no bound)}
-- returns JSON {ok = true, hold = {...}} or {ok = false, reason = 'no_adjacent_run' |
--         'unknown_section' | any refusal of hold}
--- @include "common"
--- @include "ratelimit"
--- @include "holding"

local SECTION, ROW, SCAN_LIMIT, PAGE = 1e10, 1e5, 5000, 500
local a = hold_args()
local req = json_of(ARGV[4])
if not a or not req or #KEYS ~= 13 then
  return refuse('bad_input', {argument = 'best_available arguments'})
end
local quantity, section = int_in(req.quantity, 1, MAX_SEATS), int_in(req.section, 0, MAX_ID)
local price_min, price_max = int_in(req.price_min or 0, 0, MAX_ID), int_in(req.price_max or 0, 0, MAX_ID)
if not (quantity and section and price_min and price_max) then
  return refuse('bad_input', {argument = 'best_available request'})
end

local ctx, answer = open_hold(a, {})
if not ctx then return answer end

local low, high = '-inf', '+inf'
if section > 0 then
  local rank = tonumber(redis.call('HGET', KEYS[13], tostring(section)))
  if not rank then return refuse('unknown_section', {section_id = section}) end
  low, high = rank * SECTION, '(' .. string.format('%.0f', (rank + 1) * SECTION)
end

local function fits(price)
  return price >= price_min and (price_max == 0 or price <= price_max)
end

-- the best run of a row: seats {id, column, free}; the run nearest the middle, or nil
local function best_in(row)
  local first, last = row[1].col, row[#row].col
  local middle = (first + last) / 2
  local best, best_gap = nil, nil
  local run = {}
  local function consider()
    for i = 1, #run - quantity + 1 do
      local centre = (run[i].col + run[i + quantity - 1].col) / 2
      local gap = math.abs(centre - middle)
      if best_gap == nil or gap < best_gap then
        best_gap, best = gap, {}
        for j = i, i + quantity - 1 do best[#best + 1] = run[j].id end
      end
    end
  end
  for _, seat in ipairs(row) do
    if seat.free and (#run == 0 or seat.col == run[#run].col + 1) then
      run[#run + 1] = seat
    else
      consider()
      run = seat.free and {seat} or {}
    end
  end
  consider()
  return best
end

local scanned, offset, row, row_key, picked, exhausted = 0, 0, {}, nil, nil, false
while not picked and scanned < SCAN_LIMIT do
  local page = redis.call('ZRANGEBYSCORE', KEYS[12], low, high, 'WITHSCORES', 'LIMIT', offset, PAGE)
  if #page == 0 then exhausted = true; break end
  offset = offset + #page / 2
  local ids = {}
  for i = 1, #page, 2 do ids[#ids + 1] = page[i] end
  local states = redis.call('HMGET', K.seats, unpack(ids))
  local infos = (price_min > 0 or price_max > 0) and redis.call('HMGET', K.seatinfo, unpack(ids)) or nil
  for i, id in ipairs(ids) do
    local score = tonumber(page[2 * i])
    local key = math.floor(score / ROW)
    if key ~= row_key then
      if #row > 0 then picked = best_in(row) end
      if picked then break end
      row, row_key = {}, key
    end
    local free = states[i] == 'a'
    if free and infos then free = infos[i] and fits(cjson.decode(infos[i]).price) end
    row[#row + 1] = {id = tonumber(id), col = score % ROW, free = free}
    scanned = scanned + 1
  end
  if #page / 2 < PAGE then exhausted = true; break end
end
if not picked and exhausted and #row > 0 then picked = best_in(row) end
if not picked then return refuse('no_adjacent_run', {quantity = quantity, scanned = scanned}) end
return take_selection(a, ctx, {}, picked)
