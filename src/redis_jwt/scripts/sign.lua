-- redis-jwt layout v1: create a session, enforcing the per-user limit atomically.
-- KEYS[1] session key   <prefix>:{<tag>}:s:<sid>
-- KEYS[2] index key     <prefix>:{<tag>}:i
-- ARGV[1] session id
-- ARGV[2] idle ttl, whole seconds
-- ARGV[3] absolute expiry (JWT exp), unix seconds
-- ARGV[4] private session data as JSON, '' for none
-- ARGV[5] session limit per user, 0 for none
-- ARGV[6] pub/sub channel for session events, '' for none
-- ARGV[7] prefix of this user's session keys: <prefix>:{<tag>}:s:
-- ARGV[8] user id (for event messages)
-- ARGV[9] origin: id of the publishing RedisJWT instance (event field 'o')
-- Returns {creation time in microseconds, ttl in ms, evicted session id, ...}
local skey, ikey = KEYS[1], KEYS[2]
local sid, idle, exp = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local data, limit, channel, base, uid = ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8]
local origin = ARGV[9]

local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)
-- Lua numbers are doubles and redis.call would print big ones in %.14g:
-- format every large integer ourselves.
local function int(n) return string.format('%.0f', n) end

local cap_ms = exp * 1000 - now_ms
if cap_ms < 1 then
  return redis.error_reply('ERR redis-jwt: session expiry lies in the past')
end
local ttl_ms = math.min(idle * 1000, cap_ms)

redis.call('ZREMRANGEBYSCORE', ikey, '-inf', int(now_ms))
local created = now_us
local evicted = {}
if limit > 0 then
  local live = {}
  for _, member in ipairs(redis.call('ZRANGE', ikey, 0, -1)) do
    local c = redis.call('HGET', base .. member, 'c')
    if c then
      live[#live + 1] = {tonumber(c), member}
    else
      redis.call('ZREM', ikey, member) -- deleted behind our back
    end
  end
  table.sort(live, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
  if #live > 0 and live[#live][1] >= created then
    created = live[#live][1] + 1 -- creation order must be strict for eviction
  end
  for i = 1, #live - limit + 1 do
    local victim = live[i][2]
    redis.call('DEL', base .. victim)
    redis.call('ZREM', ikey, victim)
    evicted[#evicted + 1] = victim
    if channel ~= '' then
      redis.call('PUBLISH', channel, cjson.encode({e = 'destroyed', u = uid, s = victim, r = 'evicted', o = origin}))
    end
  end
end

if data ~= '' then
  redis.call('HSET', skey, 'c', int(created), 't', idle, 'x', int(exp), 'd', data)
else
  redis.call('HSET', skey, 'c', int(created), 't', idle, 'x', int(exp))
end
redis.call('PEXPIRE', skey, int(ttl_ms))
redis.call('ZADD', ikey, int(now_ms + ttl_ms), sid)
local ittl = redis.call('PTTL', ikey)
if ittl < ttl_ms then
  redis.call('PEXPIRE', ikey, int(ttl_ms))
end
if channel ~= '' then
  redis.call('PUBLISH', channel, cjson.encode({e = 'created', u = uid, s = sid, o = origin}))
end
local reply = {int(created), int(ttl_ms)}
for _, victim in ipairs(evicted) do reply[#reply + 1] = victim end
return reply
