-- Rate limits, pasted by the loader where a script says `--- @include "ratelimit"`.
-- GCRA (the generic cell rate algorithm: a token bucket kept as one number). A limit
-- {burst, per_minute} lets `burst` requests through at once and then one every 60000/per_minute
-- ms. Its key holds the theoretical arrival time (ms) of the next request and expires when that
-- time has passed, so an idle limit costs nothing. One GET and one SET per limit.

-- Milliseconds until a request may pass `key` (0: now), and the arrival time to store if it does.
local function gcra_wait(key, burst, per_minute, now)
  local interval = 60000 / per_minute
  local tat = math.max(tonumber(redis.call('GET', key) or '0') or 0, now)
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
      local ms, tat = gcra_wait(l[1], l[2], l[3], now)
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
