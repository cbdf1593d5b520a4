-- room_join: give a visitor one place in an event's waiting room (or the place they have).
-- Before the release a place gets the random score the caller drew (below POST_RELEASE: the
-- pre-queue is in random order at release, ahead of everyone later); after it, POST_RELEASE
-- plus twice a counter (first come, first served). The proof-of-work challenge (checked by the
-- caller) is accepted once: its nonce is kept until it expires.
-- One address, one turn at a time: the n-th place taken from one client address (KEYS[9] counts
-- them for a day from the first, and at least until a day after the release: the pre-queue may
-- be open for days, and a count that ran out before the release would give the address a fresh
-- first turn) ranks behind everyone's (n-1)-th. In the pre-queue its draw is moved to tier n-1
-- (tiers of 2^48, at most 15, all below POST_RELEASE); after the release it goes behind the next
-- (n-1) * SPACING arrivals (scores count in steps of two from there, so a later place sits
-- between two arrivals and never ties with one: no identity's name decides). Many people behind
-- one address (a carrier's NAT) still all get places, later; a script with many identities on
-- one address gets no more than one turn ahead of anyone. SPACING 0 turns this off.
-- KEYS[1..7] the room keys of includes/room.lua, KEYS[8] the joins limit of the client address,
-- KEYS[9] the places taken from the client address
-- ARGV[1] buyer key, ARGV[2] random score (integer 0..2^52-1), ARGV[3] challenge nonce (16-64
-- hex), ARGV[4] challenge expiry (ms), ARGV[5] joins burst, ARGV[6] joins a minute (0 0: none),
-- ARGV[7] SPACING (0..1e6)
-- returns JSON {ok = true, place = 'queued'|'prequeue'|'admitted', ...} or
-- {ok = false, reason = 'bad_input'|'room_off'|'unconfigured'|'sold_out'|'proof_used'
-- |'proof_expired'|'rate_limited', retry_after_ms}; nothing is written unless ok
--- @include "ratelimit"
--- @include "room"

local TIER = 281474976710656  -- 2^48: 16 tiers of pre-queue draws below POST_RELEASE
local DAY = 86400000  -- ms
local buyer, score, nonce = ARGV[1], ARGV[2], ARGV[3]
local expiry, burst, per_minute = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local spacing = tonumber(ARGV[7])
local function whole(n, lo, hi) return n and n == math.floor(n) and n >= lo and n <= hi end
if #KEYS ~= 9 or #ARGV ~= 7 or type(buyer) ~= 'string' or #buyer < 1 or #buyer > 100
   or not string.match(score, '^%d+$') or not whole(tonumber(score), 0, POST_RELEASE - 1)
   or not string.match(nonce, '^[0-9a-f]+$') or #nonce < 16 or #nonce > 64
   or not whole(expiry, 0, 1e14) or not whole(burst, 0, 1e6) or not whole(per_minute, 0, 1e6)
   or not whole(spacing, 0, 1e6) then
  return cjson.encode({ok = false, reason = 'bad_input'})
end
local cfg = room_settings()
if not cfg.on then return cjson.encode({ok = false, reason = 'unconfigured'}) end
if cfg.on ~= '1' then return cjson.encode({ok = false, reason = 'room_off'}) end
local now = room_now()
local pass = redis.call('HGET', R.admitted, buyer)
if pass and not string.find(pass, '|used|', 1, true) then
  return cjson.encode({ok = true, place = 'admitted', again = true})
end  -- a used pass made its one basket: its owner may queue again, at the back
local rank = redis.call('ZRANK', R.queue, buyer)
if rank then
  return cjson.encode({ok = true, place = now < cfg.release and 'prequeue' or 'queued',
                       ahead = rank, again = true})
end
if cfg.state == 'sold_out' then return cjson.encode({ok = false, reason = 'sold_out'}) end
if expiry <= now then return cjson.encode({ok = false, reason = 'proof_expired'}) end
if redis.call('ZSCORE', R.proofs, nonce) then
  return cjson.encode({ok = false, reason = 'proof_used'})
end
if burst > 0 and per_minute > 0 then
  local wait = take_tokens({{KEYS[8], burst, per_minute}}, now)
  if wait > 0 then return cjson.encode({ok = false, reason = 'rate_limited', retry_after_ms = wait}) end
end
redis.call('ZREMRANGEBYSCORE', R.proofs, '-inf', now)
redis.call('ZADD', R.proofs, expiry, nonce)
local earlier = 0  -- places this address took before this one
if spacing > 0 then
  earlier = redis.call('INCR', KEYS[9]) - 1
  local keep = math.max(now, cfg.release) + DAY  -- (the release may have moved later)
  local ttl = redis.call('PTTL', KEYS[9])
  if earlier == 0 or ttl < 0 or (now < cfg.release and now + ttl < keep) then
    redis.call('PEXPIREAT', KEYS[9], keep)
  end
end
local place = 'queued'
if now < cfg.release then
  place = 'prequeue'
  score = math.min(earlier, 15) * TIER + tonumber(score) % TIER
else
  local seq = redis.call('HINCRBY', R.room, 'seq', 1)
  score = POST_RELEASE + 2 * (seq + earlier * spacing) + (earlier > 0 and 1 or 0)
end
redis.call('ZADD', R.queue, 'NX', score, buyer)
local second = math.floor(now / 1000)
local j = redis.call('HMGET', R.room, 'jsec', 'jn')
if tonumber(j[1]) ~= second then
  local last = (tonumber(j[1]) == second - 1) and (tonumber(j[2]) or 0) or 0
  redis.call('HSET', R.room, 'jsec', second, 'jn', 1, 'jlast', last)
else
  redis.call('HINCRBY', R.room, 'jn', 1)
end
return cjson.encode({ok = true, place = place, ahead = redis.call('ZRANK', R.queue, buyer)})
