-- redis-jwt layout v1: end every session of one user.
-- KEYS[1] index key
-- KEYS[2] call marker <prefix>:{<tag>}:q:<request id>   (the outcome, kept until the deadline)
-- KEYS[3...] the session keys of the index's members (Cluster: see ARGV[7])
-- ARGV[1] prefix of this user's session keys: <prefix>:{<tag>}:s:
-- ARGV[2] pub/sub channel ('' for none), ARGV[3] user id
-- ARGV[4] origin: id of the publishing RedisJWT instance (event field 'o')
-- ARGV[5] deadline, unix ms: past it the caller was told the call failed, so it must not apply
-- ARGV[6] a session id to keep ("sign out the other devices"), '' for none
-- ARGV[7] '1': touch only declared keys (Cluster), else '0'
-- Returns {1, id of a session that existed and was ended, ...}.
-- A second run of the same call returns the first outcome.
-- The first write is DEL, which Redis allows when it is full. The caller
-- declares the members it read first; members added since end with the index.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = tonumber(ARGV[5])
if now_ms > deadline then
  return redis.error_reply('ERR redis-jwt: late: the call ran past its deadline')
end
local done = redis.call('GET', KEYS[2])
if done then
  local reply = {1}
  for word in string.gmatch(done, '%S+') do reply[#reply + 1] = word end
  return reply
end
local strict, declared = ARGV[7] == '1', {}
for i = 3, #KEYS do declared[KEYS[i]] = true end
-- The kept session must be live: listed with a future score, and its key present.
local keep, kept = ARGV[6], false
if keep ~= '' then
  kept = redis.call('ZSCORE', KEYS[1], keep)
  if kept and (tonumber(kept) <= now_ms or ((not strict or declared[ARGV[1] .. keep])
      and redis.call('EXISTS', ARGV[1] .. keep) == 0)) then
    kept = false
  end
end
local ended = {}
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. string.format('%.0f', now_ms), '+inf')) do
  local ends
  if kept and member == keep then
    ends = false -- the caller's own session stays, with its index entry (below)
  elseif strict and not declared[ARGV[1] .. member] then
    -- Added since the caller read the index: its key is left to expire, but it
    -- ends with the index entry (verify requires it), so it is counted.
    ends = true
  else
    ends = redis.call('DEL', ARGV[1] .. member) == 1
  end
  if ends then
    ended[#ended + 1] = member
    if ARGV[2] ~= '' then
      redis.call('PUBLISH', ARGV[2], cjson.encode({e = 'destroyed', u = ARGV[3], s = member, r = 'destroy_all', o = ARGV[4]}))
    end
  end
end
redis.call('DEL', KEYS[1])
if kept then
  -- The index now lists the kept session alone, and expires with it (its score).
  redis.call('ZADD', KEYS[1], kept, keep)
  redis.call('PEXPIREAT', KEYS[1], kept)
end
redis.call('SET', KEYS[2], table.concat(ended, ' '), 'PX', string.format('%.0f', deadline - now_ms + 1))
table.insert(ended, 1, 1)
return ended
