-- login_succeeded: a password check passed. The address's failures on the account are forgiven,
-- its reservation leaves the account's count, and the address is remembered as one the account
-- logs in from (spared the account's slowdown).
-- KEYS[1] failures on this account from this address (string counter)
-- KEYS[2] the account's failures from every address (hash: fails, next_ms)
-- KEYS[3] addresses that have logged in to this account (set)
-- ARGV[1] the client address
-- ARGV[2] how long an address is remembered after its last login, milliseconds (integer >= 1)
-- ARGV[3] the most addresses remembered per account (integer >= 1); a random one makes room
-- returns 1

--- @include "argv_integer"

local address = ARGV[1]
local remember = positive_integer(2)
local most = positive_integer(3)
if not address or address == '' then
  return redis.error_reply('ERR login_succeeded: the address is empty')
end
if not (remember and most) then
  return redis.error_reply('ERR login_succeeded: limits must be positive integers')
end

redis.call('DEL', KEYS[1])
if tonumber(redis.call('HGET', KEYS[2], 'fails') or '0') > 0 then
  redis.call('HINCRBY', KEYS[2], 'fails', -1)
end
redis.call('SREM', KEYS[3], address)
while redis.call('SCARD', KEYS[3]) >= most do
  redis.call('SPOP', KEYS[3])
end
redis.call('SADD', KEYS[3], address)
redis.call('PEXPIRE', KEYS[3], remember)
return 1
