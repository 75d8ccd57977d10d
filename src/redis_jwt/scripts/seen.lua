-- redis-jwt layout v1: record activity (track_activity=True), sent beside a verify.
-- KEYS[1] session key
-- Sets the field 'ls' (last seen, unix ms of the Redis clock) only when the
-- session exists: a session ended meanwhile is never brought back as a bare hash.
-- Returns 1 when recorded, 0 when the session is gone.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'ls', string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)))
return 1
