-- login_attempt: reserve one password check for an account from one client address, or say how
-- long to wait. The reservation counts as a failure until login_succeeded takes it back, so
-- parallel guesses each take their own place and never more than the limits are checked.
-- KEYS[1] failures on this account from this address (string counter, expires)
-- KEYS[2] the account's failures from every address (hash: fails, next_ms; expires)
-- KEYS[3] addresses that have logged in to this account (set)
-- ARGV[1] the client address (a member of KEYS[3])
-- ARGV[2] failures allowed per account and address (integer >= 1)
-- ARGV[3] window in milliseconds (integer >= 1): counters expire this long after the last failure
-- ARGV[4] failures of the account, from every address, after which addresses it does not know
--         are slowed (integer >= 1)
-- ARGV[5] the longest wait between two checks of a slowed account, milliseconds (integer >= 1)
-- returns {1, 0} reserved;
--         {0, ms, 'address'} this address has used its failures on the account: wait ms;
--         {0, ms, 'account'} the account is slowed for addresses it does not know: wait ms

--- @include "argv_integer"

local address = ARGV[1]
local per_address = positive_integer(2)
local window = positive_integer(3)
local slow_after = positive_integer(4)
local max_delay = positive_integer(5)
if not address or address == '' then
  return redis.error_reply('ERR login_attempt: the address is empty')
end
if not (per_address and window and slow_after and max_delay) then
  return redis.error_reply('ERR login_attempt: limits must be positive integers')
end

local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= per_address then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], window)
    ttl = window
  end
  return {0, ttl, 'address'}
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local fails = tonumber(redis.call('HGET', KEYS[2], 'fails') or '0')
local known = redis.call('SISMEMBER', KEYS[3], address) == 1
if fails >= slow_after and not known then
  local next_ms = tonumber(redis.call('HGET', KEYS[2], 'next_ms') or '0')
  if now < next_ms then
    return {0, next_ms - now, 'account'}
  end
end

-- below the limit, each failure restarts this address's window; at the limit it runs out
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], window)
fails = redis.call('HINCRBY', KEYS[2], 'fails', 1)
local keep = window
if fails > slow_after and not known then
  -- the lane of unknown addresses: 1 s after the first failure past the threshold, doubling
  -- with each, up to max_delay (a known address's checks never push it back)
  local delay = math.min(max_delay, 1000 * 2 ^ math.min(fails - slow_after - 1, 30))
  redis.call('HSET', KEYS[2], 'next_ms', now + delay)
  keep = math.max(window, delay)
end
redis.call('PEXPIRE', KEYS[2], keep)
return {1, 0}
