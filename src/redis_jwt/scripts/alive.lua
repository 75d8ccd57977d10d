-- redis-jwt layout v1: the plain verify: is the session alive, and for how long?
-- KEYS[1] session key, KEYS[2] index key
-- ARGV[1] session id
-- Returns the session key's ttl in ms (-1: no expiry); -2 when the session does
-- not exist or its index entry is gone (see docs/layout.md, "Eviction").
local pttl = redis.call('PTTL', KEYS[1])
if pttl ~= -2 and not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return -2
end
return pttl
