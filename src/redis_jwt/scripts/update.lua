-- redis-jwt layout v1: replace the private data of a live session.
-- KEYS[1] session key, KEYS[2] index key
-- ARGV[1] session id
-- ARGV[2] the new private data as JSON, '' to remove it
-- ARGV[3] deadline, unix ms: past it the caller was told the call failed, so it must not apply
-- Returns {ttl in ms (-1: no expiry)}, or {-2} when the session is gone (no key,
-- or no index entry: see docs/layout.md, "Eviction").
-- Running it twice writes the same value: no call marker is needed. HSET is the
-- first write, which Redis refuses when it is out of memory; removing (HDEL) is
-- allowed then.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now_ms > tonumber(ARGV[3]) then
  return redis.error_reply('ERR redis-jwt: late: the call ran past its deadline')
end
local pttl = redis.call('PTTL', KEYS[1])
if pttl == -2 or not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return {-2}
end
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], 'd')
else
  redis.call('HSET', KEYS[1], 'd', ARGV[2])
end
return {pttl}
