-- Token buckets, pasted by the loader where a script says `--- @include "ratelimit"`.
-- A bucket is a hash {t = tokens, at = ms of the last refill}; it holds `burst` tokens at most and
-- refills `per_minute` tokens a minute. A missing bucket is full. Buckets expire once they would
-- be full again, so idle ones cost nothing.

-- Milliseconds until `key` has a token (0: it has one now), and the bucket's state.
local function bucket_wait(key, burst, per_minute, now)
  local state = redis.call('HMGET', key, 't', 'at')
  local tokens, at = tonumber(state[1]), tonumber(state[2])
  if tokens == nil or at == nil then
    tokens, at = burst, now
  end
  tokens = math.min(burst, tokens + math.max(0, now - at) * per_minute / 60000)
  if tokens >= 1 then return 0, tokens end
  return math.ceil((1 - tokens) * 60000 / per_minute), tokens
end

-- Spend one token of `key`, whose refilled count is `tokens` (from bucket_wait).
local function bucket_spend(key, tokens, burst, per_minute, now)
  redis.call('HSET', key, 't', tostring(tokens - 1), 'at', now)
  redis.call('PEXPIRE', key, math.ceil(burst * 60000 / per_minute) + 1000)
end

-- Take one token from every bucket of `buckets` ({key, burst, per_minute} each; burst 0 means
-- no limit) or from none: returns 0 when taken, else the longest wait in ms.
local function take_tokens(buckets, now)
  local wait, found = 0, {}
  for i, b in ipairs(buckets) do
    if b[2] > 0 then
      local ms, tokens = bucket_wait(b[1], b[2], b[3], now)
      wait = math.max(wait, ms)
      found[i] = tokens
    end
  end
  if wait > 0 then return wait end
  for i, b in ipairs(buckets) do
    if b[2] > 0 then bucket_spend(b[1], found[i], b[2], b[3], now) end
  end
  return 0
end
