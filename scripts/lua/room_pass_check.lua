-- room_pass_check: may this pass be used now? Read-only. A live pass (not expired by Redis TIME)
-- may make one basket; a used pass only stands for the basket it made (`hold`, its checkout).
-- KEYS[1..7] the room keys of includes/room.lua
-- ARGV[1] buyer key, ARGV[2] pass number, ARGV[3] hold id ('' for a new basket)
-- returns 'ok' or the refusal: 'bad_input' | 'pass_expired' | 'pass_replaced' | 'pass_used'
--- @include "room"
--- @include "room_pass"

local buyer, no, hold = pass_args(3)
if not buyer then return 'bad_input' end
local kind, current, detail = pass_record(buyer)
if not kind then return 'pass_expired' end
if current ~= no then return 'pass_replaced' end
if kind == 'used' then
  if hold ~= '' and detail == hold then return 'ok' end
  return 'pass_used'
end
if detail <= room_now() then return 'pass_expired' end
return 'ok'
