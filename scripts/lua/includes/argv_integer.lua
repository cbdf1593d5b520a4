-- ARGV[i] as a positive integer (>= 1), or nil when it is anything else.
local function positive_integer(i)
  local n = tonumber(ARGV[i])
  if n and n >= 1 and n % 1 == 0 then return n end
end
