-- Rate limits, pasted by the loader where a script says `--- @include "ratelimit"`.
-- GCRA (the generic cell rate algorithm: a token bucket kept as one number). A limit
-- {burst, per_minute} lets `burst` requests through at once and then one every 60000/per_minute
-- ms. Its state is the theoretical arrival time (ms) of the next request; once that time has
-- passed the limit is full again, so a state in the past is as good as none and may be dropped.
-- A limit lives either in a key of its own that expires when its state is past (take_tokens: one
-- GET and one SET per limit) or as a field of a hash that holds many limits (check_tokens_in and
-- spend_tokens_in: one HMGET and one HSET for all of them, the state kept to the fraction of a
-- ms: a limit of many a second moves it by less than 1 ms a request; past states are trimmed
-- by trim_limits).

-- Milliseconds until a request may pass a limit in state `tat` (0: now), and the state to store
-- if it does.
local function gcra_wait(tat, burst, per_minute, now)
  local interval = 60000 / per_minute
  tat = math.max(tonumber(tat or '0') or 0, now)
  local wait = tat - interval * (burst - 1) - now
  if wait > 0 then return math.ceil(wait), nil end
  return 0, tat + interval
end

-- Pass one request through every limit of `limits` ({key, burst, per_minute} each; burst 0 means
-- no limit) or through none: returns 0 when it passed, else the longest wait in ms.
local function take_tokens(limits, now)
  local wait, next_tat = 0, {}
  for i, l in ipairs(limits) do
    if l[2] > 0 then
      local ms, tat = gcra_wait(redis.call('GET', l[1]), l[2], l[3], now)
      wait = math.max(wait, ms)
      next_tat[i] = tat
    end
  end
  if wait > 0 then return wait end
  for i, l in ipairs(limits) do
    if l[2] > 0 then
      redis.call('SET', l[1], string.format('%.3f', next_tat[i]), 'PX',
                 math.max(1, math.ceil(next_tat[i] - now)))
    end
  end
  return 0
end

-- The same for limits kept as fields of the hash `hash` ({field, burst, per_minute} each), in two
-- steps, so that only a request that goes through is counted: check_tokens_in answers 0 and the
-- states to store (for spend_tokens_in) when every limit has room, else the longest wait in ms
-- and the field of the limit that asked for it.
local function check_tokens_in(hash, limits, now)
  local fields, on = {}, {}
  for _, l in ipairs(limits) do
    if l[2] > 0 then
      fields[#fields + 1] = l[1]
      on[#on + 1] = l
    end
  end
  if #fields == 0 then return 0, nil, {} end
  local states = redis.call('HMGET', hash, unpack(fields))
  local wait, by, update = 0, nil, {}
  for i, l in ipairs(on) do
    local ms, tat = gcra_wait(states[i], l[2], l[3], now)
    if ms > wait then wait, by = ms, l[1] end
    update[#update + 1] = l[1]
    update[#update + 1] = tat or 0  -- a number: Redis stores it exactly (%.17g)
  end
  if wait > 0 then return wait, by, nil end
  return 0, nil, update
end

local function spend_tokens_in(hash, update)
  if #update > 0 then redis.call('HSET', hash, unpack(update)) end
end

-- Drop up to about `count` states of the hash `hash` that are past (worth nothing), walking it
-- a page per call with a cursor kept in the hash itself (field '~cursor'). Returns how many.
local function trim_limits(hash, now, count)
  local cursor = redis.call('HGET', hash, '~cursor') or '0'
  local page = redis.call('HSCAN', hash, cursor, 'COUNT', count)
  local stale = {}
  for i = 1, #page[2], 2 do
    local field = page[2][i]
    if field ~= '~cursor' and (tonumber(page[2][i + 1]) or 0) <= now then
      stale[#stale + 1] = field
    end
  end
  for i = 1, #stale, 500 do
    redis.call('HDEL', hash, unpack(stale, i, math.min(i + 499, #stale)))
  end
  if page[1] == '0' then
    redis.call('HDEL', hash, '~cursor')
  else
    redis.call('HSET', hash, '~cursor', page[1])
  end
  return #stale
end
