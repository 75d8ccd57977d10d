-- redis-jwt layout v1: list (or count) the live sessions of one user, pruning the index.
-- KEYS[1] index key
-- ARGV[1] prefix of this user's session keys: <prefix>:{<tag>}:s:
-- ARGV[2] 'count' to return only the number of live sessions
-- Returns the count, or a flat list of {session id, ttl ms, created us, idle ttl s, data or false}.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now_ms))
local counting = ARGV[2] == 'count'
local out, n = {}, 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. member
  local pttl = redis.call('PTTL', key)
  if pttl == -2 then
    redis.call('ZREM', KEYS[1], member) -- deleted behind our back
  else
    n = n + 1
    if not counting then
      local f = redis.call('HMGET', key, 'c', 't', 'd')
      out[#out + 1] = member
      out[#out + 1] = pttl
      out[#out + 1] = f[1] or false
      out[#out + 1] = f[2] or false
      out[#out + 1] = f[3] or false
    end
  end
end
if counting then
  return n
end
return out
