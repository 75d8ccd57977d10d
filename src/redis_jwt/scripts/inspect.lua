-- redis-jwt layout v1: look at a session whose schedule entry came due (the user's slot).
-- KEYS[1] session key, KEYS[2] index key
-- ARGV[1] session id
-- Reading the key makes Redis delete it now if its time has passed, which also
-- emits Redis's own 'expired' keyspace notification without delay.
-- Returns the ms left (> 0: alive, due again then) or -2 (ended: gone, or
-- past its JWT exp with no expiry of its own).
local pttl = redis.call('PTTL', KEYS[1])
if pttl == -1 then
  local x = tonumber(redis.call('HGET', KEYS[1], 'x'))
  if not x then
    return 3600000 -- not a session this layout wrote: look again in an hour
  end
  local t = redis.call('TIME')
  local left = x * 1000 - (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
  if left > 0 then
    return left
  end
  pttl = -2
end
if pttl == -2 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return -2
end
return pttl
