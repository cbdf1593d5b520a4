-- room_tick: one admission tick of an event's waiting room (includes/room.lua), then its figures.
-- Safe to run from any number of processes at once: the credit lives in the room hash and time
-- comes from Redis TIME, so concurrent ticks share one budget and pop distinct visitors.
-- KEYS[1..7] the room keys of includes/room.lua
-- returns JSON {state, admitted_now, queued, live_passes, admitted, used, expired, rate, ...};
-- {state = 'unconfigured'} when the room has no settings in Redis (nothing is written)
--- @include "room"

if #KEYS ~= 7 then return redis.error_reply('room_tick: seven room keys') end
local cfg = room_settings()
if not cfg.on then return cjson.encode({state = 'unconfigured'}) end
local now = room_now()
local state, n, avail, held = room_tick(cfg, now)
local out = room_figures(cfg, state, now, avail, held)
out.admitted_now = n
return cjson.encode(out)
