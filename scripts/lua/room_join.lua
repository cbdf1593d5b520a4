-- room_join: give a visitor one place in an event's waiting room (or the place they have).
-- Before the release a place gets the random score the caller drew (below POST_RELEASE: the
-- pre-queue is in random order at release, ahead of everyone later); after it, POST_RELEASE
-- plus a counter (first come, first served). The proof-of-work challenge (checked by the caller)
-- is accepted once: its nonce is kept until it expires.
-- KEYS[1..7] the room keys of includes/room.lua, KEYS[8] the joins limit of the client address
-- ARGV[1] buyer key, ARGV[2] random score (integer 0..2^52-1), ARGV[3] challenge nonce (16-64
-- hex), ARGV[4] challenge expiry (ms), ARGV[5] joins burst, ARGV[6] joins a minute (0 0: none)
-- returns JSON {ok = true, place = 'queued'|'prequeue'|'admitted', ...} or
-- {ok = false, reason = 'bad_input'|'room_off'|'unconfigured'|'sold_out'|'proof_used'
-- |'proof_expired'|'rate_limited', retry_after_ms}; nothing is written unless ok
--- @include "ratelimit"
--- @include "room"

local buyer, score, nonce = ARGV[1], ARGV[2], ARGV[3]
local expiry, burst, per_minute = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local function whole(n, lo, hi) return n and n == math.floor(n) and n >= lo and n <= hi end
if #KEYS ~= 8 or #ARGV ~= 6 or type(buyer) ~= 'string' or #buyer < 1 or #buyer > 100
   or not string.match(score, '^%d+$') or not whole(tonumber(score), 0, POST_RELEASE - 1)
   or not string.match(nonce, '^[0-9a-f]+$') or #nonce < 16 or #nonce > 64
   or not whole(expiry, 0, 1e14) or not whole(burst, 0, 1e6) or not whole(per_minute, 0, 1e6) then
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
local place = 'queued'
if now < cfg.release then
  place = 'prequeue'
else
  score = POST_RELEASE + redis.call('HINCRBY', R.room, 'seq', 1)
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
