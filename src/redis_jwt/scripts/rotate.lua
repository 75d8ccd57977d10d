-- redis-jwt layout v1: give a live session a new id (privilege change, fixation defence).
-- KEYS[1] the session's key      <prefix>:{<tag>}:s:<old sid>
-- KEYS[2] its new key            <prefix>:{<tag>}:s:<new sid>
-- KEYS[3] index key              <prefix>:{<tag>}:i
-- KEYS[4] call marker            <prefix>:{<tag>}:q:<new sid>   (the outcome, kept until the deadline)
-- ARGV[1] old session id, ARGV[2] new session id
-- ARGV[3] pub/sub channel ('' for none), ARGV[4] user id
-- ARGV[5] origin: id of the publishing RedisJWT instance (event field 'o')
-- ARGV[6] deadline, unix ms: past it the caller was told the call failed, so it must not apply
-- Returns the new key's ttl in ms (-1: no expiry), or -2 when the session is gone.
-- A second run of the same call (a retry after a lost reply) returns the first outcome.
-- RENAME keeps every field (creation time, idle ttl, cap, private data, device)
-- and the remaining expiry; the new id takes the old one's index score, so
-- eviction order and listing stay as they were.
-- The first write is the marker SET, which Redis refuses when it is out of memory.
local skey, nkey, ikey, marker = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local old, new, channel, uid, origin = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local deadline = tonumber(ARGV[6])
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now_ms > deadline then
  return redis.error_reply('ERR redis-jwt: late: the call ran past its deadline')
end
local done = redis.call('GET', marker)
if done then
  return tonumber(done)
end
-- Alive means the key exists and the index lists it (docs/layout.md, "Eviction").
local pttl = redis.call('PTTL', skey)
local score = pttl ~= -2 and redis.call('ZSCORE', ikey, old)
if not score then
  return -2
end
redis.call('SET', marker, pttl, 'PX', string.format('%.0f', deadline - now_ms + 1))
redis.call('RENAME', skey, nkey)
redis.call('ZREM', ikey, old)
redis.call('ZADD', ikey, score, new)
if channel ~= '' then
  redis.call('PUBLISH', channel, cjson.encode({e = 'destroyed', u = uid, s = old, r = 'rotated', o = origin}))
  redis.call('PUBLISH', channel, cjson.encode({e = 'created', u = uid, s = new, o = origin}))
end
return pttl
