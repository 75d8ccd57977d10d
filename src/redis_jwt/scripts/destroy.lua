-- redis-jwt layout v1: end one session.
-- KEYS[1] session key, KEYS[2] index key
-- KEYS[3] call marker <prefix>:{<tag>}:q:<request id>   (the outcome, kept until the deadline)
-- ARGV[1] session id, ARGV[2] pub/sub channel ('' for none), ARGV[3] user id, ARGV[4] reason
-- ARGV[5] origin: id of the publishing RedisJWT instance (event field 'o')
-- ARGV[6] deadline, unix ms: past it the caller was told the call failed, so it must not apply
-- Returns 1 if the session existed, else 0; a second run of the same call returns the first outcome.
-- The first write is DEL, which Redis allows when it is full: logging out frees memory.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = tonumber(ARGV[6])
if now_ms > deadline then
  return redis.error_reply('ERR redis-jwt: late: the call ran past its deadline')
end
local done = redis.call('GET', KEYS[3])
if done then
  return tonumber(done)
end
local removed = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SET', KEYS[3], removed, 'PX', string.format('%.0f', deadline - now_ms + 1))
if removed == 1 and ARGV[2] ~= '' then
  redis.call('PUBLISH', ARGV[2], cjson.encode({e = 'destroyed', u = ARGV[3], s = ARGV[1], r = ARGV[4], o = ARGV[5]}))
end
return removed
