-- room_configure: set an event's waiting-room settings (the provider's, from Postgres).
-- KEYS[1..7] the room keys of includes/room.lua
-- ARGV[1] on (0|1), ARGV[2] admission rate (visitors a second, 0.01..100000), ARGV[3] paused
-- (0|1), ARGV[4] release time (ms, 0: none), ARGV[5] pass lifetime (ms, 10000..3600000),
-- ARGV[6] proof-of-work difficulty (leading zero bits, 0..28)
-- returns 'ok' or 'bad_input' (nothing written)
--- @include "room"

local on, rate, paused = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local release, pass_ms, difficulty = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local function whole(n, lo, hi) return n and n == math.floor(n) and n >= lo and n <= hi end
if #KEYS ~= 7 or #ARGV ~= 6 or (on ~= '0' and on ~= '1') or (paused ~= '0' and paused ~= '1')
   or not rate or rate ~= rate or rate < 0.01 or rate > 100000 or not whole(release, 0, 1e14)
   or not whole(pass_ms, 10000, 3600000) or not whole(difficulty, 0, 28) then
  return 'bad_input'
end
redis.call('HSET', R.room, 'on', on, 'rate', string.format('%.4f', rate), 'paused', paused,
           'release', release, 'pass_ms', pass_ms, 'difficulty', difficulty)
return 'ok'
