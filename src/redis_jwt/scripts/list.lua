-- redis-jwt layout v1: list (or count) the live sessions of one user, pruning the index.
-- KEYS[1] index key
-- KEYS[2...] the session keys of the index's live members (Cluster: see ARGV[3])
-- ARGV[1] prefix of this user's session keys: <prefix>:{<tag>}:s:
-- ARGV[2] 'count' to return only the number of live sessions
-- ARGV[3] '1': touch only declared keys (Cluster), else '0'
-- Returns {count} or {count, then per session: id, ttl ms, created us, idle ttl s, data,
-- address, user agent, last seen ms (false for what is absent)};
-- {-1, member, ...} when listing and a live member's key was not declared: call again
-- declaring them (counting takes an undeclared member, added meanwhile, as live).
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. string.format('%.0f', now_ms), '+inf')
local counting = ARGV[2] == 'count'
if ARGV[3] == '1' and not counting then
  local declared = {}
  for i = 2, #KEYS do declared[KEYS[i]] = true end
  for _, member in ipairs(members) do
    if not declared[ARGV[1] .. member] then
      local out = {-1}
      for _, m in ipairs(members) do out[#out + 1] = m end
      return out
    end
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now_ms))
local declared = {}
for i = 2, #KEYS do declared[KEYS[i]] = true end
local out, n = {0}, 0
for _, member in ipairs(members) do
  local key = ARGV[1] .. member
  local pttl = -1 -- counting on a Cluster: an undeclared member is a live one added meanwhile
  if ARGV[3] ~= '1' or declared[key] then
    pttl = redis.call('PTTL', key)
  end
  if pttl == -2 then
    redis.call('ZREM', KEYS[1], member) -- deleted behind our back
  else
    n = n + 1
    if not counting then
      local f = redis.call('HMGET', key, 'c', 't', 'd', 'ip', 'ua', 'ls')
      out[#out + 1] = member
      out[#out + 1] = pttl
      for i = 1, 6 do out[#out + 1] = f[i] or false end
    end
  end
end
out[1] = n
return out
