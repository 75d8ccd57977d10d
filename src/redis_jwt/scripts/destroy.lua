-- redis-jwt layout v1: end one session.
-- KEYS[1] session key, KEYS[2] index key
-- ARGV[1] session id, ARGV[2] pub/sub channel ('' for none), ARGV[3] user id, ARGV[4] reason
-- ARGV[5] origin: id of the publishing RedisJWT instance (event field 'o')
-- Returns 1 if the session existed, else 0.
local removed = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if removed == 1 and ARGV[2] ~= '' then
  redis.call('PUBLISH', ARGV[2], cjson.encode({e = 'destroyed', u = ARGV[3], s = ARGV[1], r = ARGV[4], o = ARGV[5]}))
end
return removed
