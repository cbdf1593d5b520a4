-- begin_restore: stop an event's sales until the record (Postgres) has been re-applied to it,
-- after this Redis may have lost sales (it restarted, perhaps from an older copy). The event
-- goes `restoring`: nothing is held or sold until open_stock.lua opens it (engine/onsale.py).
-- An event not loaded is left alone (its restoring load marks it from its first write).
-- KEYS   the eleven event keys of includes/common.lua
-- returns JSON {ok = true, status = the status it had, or false when not loaded}
--- @include "common"

local status = redis.call('HGET', K.meta, 'status')
if status then redis.call('HSET', K.meta, 'status', 'restoring') end
return cjson.encode({ok = true, status = status or false})
