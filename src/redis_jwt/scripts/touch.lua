-- redis-jwt layout v1: verify a session, optionally extending it and loading its data.
-- KEYS[1] session key, KEYS[2] index key
-- ARGV[1] flags: 1 = extend the idle ttl, 2 = return the private data, 4 = announce 'extended'
-- ARGV[2] pub/sub channel, '' for none
-- ARGV[3] user id, ARGV[4] session id (for the index and event messages)
-- ARGV[5] origin: id of the publishing RedisJWT instance (event field 'o')
-- Returns {ttl in ms, data or false}; {-2} when the session does not exist.
-- A session counts only while its index entry exists: if Redis evicted the
-- index, destroy_all could not find the session, so it must not verify either.
local skey, ikey = KEYS[1], KEYS[2]
local flags = tonumber(ARGV[1])
local slide, load, announce = flags % 2 == 1, math.floor(flags / 2) % 2 == 1, flags >= 4

local pttl = redis.call('PTTL', skey)
if pttl == -2 or not redis.call('ZSCORE', ikey, ARGV[4]) then
  return {-2}
end
if not (slide or load) then
  return {pttl}
end
local fields = redis.call('HMGET', skey, 't', 'x', 'd')
if slide then
  local idle, exp = tonumber(fields[1]), tonumber(fields[2])
  if idle and exp then
    local t = redis.call('TIME')
    local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local ttl_ms = math.min(idle * 1000, exp * 1000 - now_ms)
    if ttl_ms > pttl then
      local function int(n) return string.format('%.0f', n) end
      redis.call('PEXPIRE', skey, int(ttl_ms))
      redis.call('ZADD', ikey, int(now_ms + ttl_ms), ARGV[4])
      if redis.call('PTTL', ikey) < ttl_ms then
        redis.call('PEXPIRE', ikey, int(ttl_ms))
      end
      pttl = ttl_ms
    end
    if announce and ARGV[2] ~= '' then
      redis.call('PUBLISH', ARGV[2], cjson.encode({e = 'extended', u = ARGV[3], s = ARGV[4], o = ARGV[5]}))
    end
  end
end
if load then
  return {pttl, fields[3] or false}
end
return {pttl}
