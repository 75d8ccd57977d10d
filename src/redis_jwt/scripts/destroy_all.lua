-- redis-jwt layout v1: end every session of one user.
-- KEYS[1] index key
-- ARGV[1] prefix of this user's session keys: <prefix>:{<tag>}:s:
-- ARGV[2] pub/sub channel ('' for none), ARGV[3] user id
-- ARGV[4] origin: id of the publishing RedisJWT instance (event field 'o')
-- Returns the ids of the sessions that existed and were ended.
local ended = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if redis.call('DEL', ARGV[1] .. member) == 1 then
    ended[#ended + 1] = member
    if ARGV[2] ~= '' then
      redis.call('PUBLISH', ARGV[2], cjson.encode({e = 'destroyed', u = ARGV[3], s = member, r = 'destroy_all', o = ARGV[4]}))
    end
  end
end
redis.call('DEL', KEYS[1])
return ended
