-- hold: take general-admission quantities and/or specific seats for one buyer, all or nothing.
-- A buyer has at most one live hold (basket) per event; the buyer's tickets in the event (held
-- and bought, all packages) stay within the event's buyer_cap and each package's limit.
-- KEYS[1..11] the event keys of includes/common.lua
-- ARGV[1..3], ARGV[5..8] as includes/holding.lua says (hold id, buyer, ttl; lazy expiry, limits,
--         client address, whether the hold id may have been used before)
-- ARGV[4] JSON {"ga": [[package_id, quantity], ...], "seats": [seat_id, ...]}
-- returns JSON {ok = true, hold = {...}, replay = bool} or {ok = false, reason = ..., ...details};
-- invalid arguments answer reason 'bad_input' before anything is written.
--- @include "common"
--- @include "ratelimit"
--- @include "holding"

local a = hold_args()
local request = json_of(ARGV[4])
if not a or not request or #KEYS ~= 11 then return refuse('bad_input', {argument = 'hold arguments'}) end
local ga_in, seats_in = array(request.ga, MAX_LINES), seat_list(request.seats)
if not ga_in or not seats_in then return refuse('bad_input', {argument = 'selection'}) end
local ga_seen, pids = {}, {}
for _, item in ipairs(ga_in) do
  if type(item) ~= 'table' or not int_in(item[1], 1, MAX_ID) or not int_in(item[2], 1, MAX_QTY)
     or ga_seen[item[1]] then
    return refuse('bad_input', {argument = 'selection'})
  end
  ga_seen[item[1]] = true
  pids[#pids + 1] = item[1]
end

local ctx, answer = open_hold(a, pids)
if not ctx then return answer end
return take_selection(a, ctx, ga_in, seats_in)
