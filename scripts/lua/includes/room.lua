-- The waiting room's shared steps, pasted where a room script says `--- @include "room"`.
-- Every room script receives the same seven keys first, all carrying the event's hash tag:
local R = {
  room = KEYS[1],      -- hash: settings (on, rate, paused, release, pass_ms, difficulty) and state
                       --       (tokens, tok_at, seq, issued, used, expired, state, jsec, jn, jlast)
  queue = KEYS[2],     -- zset: buyer -> place (pre-queue: a random score below POST_RELEASE;
                       --       later arrivals POST_RELEASE + 2 x a counter, first come first
                       --       served; + 1 for an address's later place, see room_join.lua)
  passes = KEYS[3],    -- zset: buyer -> expiry (ms) of their live, unused pass
  admitted = KEYS[4],  -- hash: buyer -> "<pass no>|<expiry ms>" (live) or
                       --       "<pass no>|used|<hold id>|<hold made, ms>"
  proofs = KEYS[5],    -- zset: proof-of-work challenge nonce -> expiry (ms): each is accepted once
  stock = KEYS[6],     -- the event's stock hash (includes/common.lua): "<pid>:avail", "<pid>:held"
  meta = KEYS[7],      -- the event's meta hash: status
}
local POST_RELEASE = 4503599627370496  -- 2^52: every pre-queue score is below it
local MAX_ADMIT = 1000   -- visitors one tick admits at most (bounds one call's work)
local MAX_EXPIRE = 1000  -- expired passes one tick drops at most

local function room_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function room_settings()
  local v = redis.call('HMGET', R.room, 'on', 'rate', 'paused', 'release', 'pass_ms', 'tokens',
                       'tok_at', 'state')
  return {on = v[1], rate = tonumber(v[2]) or 0, paused = v[3] == '1',
          release = tonumber(v[4]) or 0, pass_ms = tonumber(v[5]) or 0,
          tokens = tonumber(v[6]) or 0, tok_at = tonumber(v[7]), state = v[8]}
end

-- Units on sale and units in holds, over every package of the event.
local function stock_left()
  local fields = redis.call('HGETALL', R.stock)
  local avail, held = 0, 0
  for i = 1, #fields, 2 do
    local f, n = fields[i], tonumber(fields[i + 1]) or 0
    if string.sub(f, -6) == ':avail' then avail = avail + n
    elseif string.sub(f, -5) == ':held' then held = held + n end
  end
  return avail, held, #fields > 0
end

local function expire_passes(now)
  local due = redis.call('ZRANGEBYSCORE', R.passes, '-inf', now, 'LIMIT', 0, MAX_EXPIRE)
  if #due > 0 then
    redis.call('ZREM', R.passes, unpack(due))
    redis.call('HDEL', R.admitted, unpack(due))
    redis.call('HINCRBY', R.room, 'expired', #due)
  end
end

-- One admission tick at `now`: drop expired passes, then admit from the head of the queue as
-- many as the rate's credit, the stock left (minus live unused passes) and MAX_ADMIT allow.
-- The credit is a bucket of at most one second's worth (at least 1), refilled at `rate` a second
-- from Redis TIME, so any window of W seconds admits at most rate * W + that one second's worth,
-- however many processes tick. Returns the room's state, how many were admitted, and the units
-- available and held (nil when the tick did not need to read them).
local function room_tick(cfg, now)
  expire_passes(now)
  local state, admitted, avail, held, loaded = 'open', 0, nil, nil, nil
  if cfg.on ~= '1' then state = 'off'
  elseif redis.call('HGET', R.meta, 'status') ~= 'on_sale' then state = 'not_on_sale'
  elseif now < cfg.release then state = 'before_release'
  else
    avail, held, loaded = stock_left()
    local live = redis.call('ZCARD', R.passes)
    local burst = math.max(1, math.floor(cfg.rate))
    local tokens = burst
    if cfg.tok_at then
      tokens = math.min(burst, cfg.tokens + math.max(0, now - cfg.tok_at) * cfg.rate / 1000)
    end
    if not loaded then state = 'not_on_sale'
    elseif avail <= 0 and held <= 0 then state = 'sold_out'
    elseif avail <= 0 then state = 'all_held'
    elseif cfg.paused then state = 'paused'
    elseif avail - live <= 0 then state = 'all_offered'
    else
      local n = math.min(math.floor(tokens), avail - live, MAX_ADMIT)
      if n > 0 then
        local popped = redis.call('ZPOPMIN', R.queue, n)
        admitted = #popped / 2
        if admitted > 0 then
          local first = redis.call('HINCRBY', R.room, 'issued', admitted) - admitted
          local expiry = now + cfg.pass_ms
          for i = 1, #popped, 2 do
            local buyer = popped[i]
            redis.call('HSET', R.admitted, buyer, string.format('%d|%d', first + (i + 1) / 2, expiry))
            redis.call('ZADD', R.passes, expiry, buyer)
          end
        end
      end
    end
    if admitted > 0 or not cfg.tok_at then
      redis.call('HSET', R.room, 'tokens', string.format('%.6f', tokens - admitted), 'tok_at', now)
    end
  end
  if state ~= cfg.state then redis.call('HSET', R.room, 'state', state) end
  return state, admitted, avail, held
end

-- What the provider and the queue page see about the room as a whole (`avail` and `held` as the
-- tick read them, or nil to read them here).
local function room_figures(cfg, state, now, avail, held)
  local f = redis.call('HMGET', R.room, 'issued', 'used', 'expired', 'difficulty')
  if not avail then avail, held = stock_left() end
  return {state = state, now = now, rate = cfg.rate, paused = cfg.paused, release = cfg.release,
          queued = redis.call('ZCARD', R.queue), live_passes = redis.call('ZCARD', R.passes),
          admitted = tonumber(f[1]) or 0, used = tonumber(f[2]) or 0, expired = tonumber(f[3]) or 0,
          difficulty = tonumber(f[4]) or 0, available = avail, held = held}
end
