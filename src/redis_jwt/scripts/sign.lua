-- redis-jwt layout v1: create a session, enforcing the per-user limit atomically.
-- KEYS[1] session key   <prefix>:{<tag>}:s:<sid>
-- KEYS[2] index key     <prefix>:{<tag>}:i
-- KEYS[3] call marker   <prefix>:{<tag>}:q:<sid>   (the outcome, kept until the deadline:
--                       'created ttl_ms [evicted...]', or 'created' alone when nothing
--                       was evicted and created is the Redis time of the run)
-- KEYS[4...] the session keys of the index's live members (Cluster: see ARGV[13])
-- ARGV[1] session id
-- ARGV[2] idle ttl, whole seconds
-- ARGV[3] absolute expiry (JWT exp), unix seconds
-- ARGV[4] private session data as JSON, '' for none
-- ARGV[5] session limit per user, 0 for none
-- ARGV[6] pub/sub channel for session events, '' for none
-- ARGV[7] prefix of this user's session keys: <prefix>:{<tag>}:s:
-- ARGV[8] user id (for event messages)
-- ARGV[9] origin: id of the publishing RedisJWT instance (event field 'o')
-- ARGV[10] deadline, unix ms: past it the caller was told the call failed, so it must not apply
-- ARGV[11], ARGV[12] the device's address and user agent ('' for none)
-- ARGV[13] '1': touch only declared keys (Cluster), else '0'
-- Returns {1, creation time in microseconds, ttl in ms, evicted session id, ...}.
-- A second run of the same call (a retry after a lost reply) returns the first outcome.
-- Reads come first and the first write is SET, which Redis refuses when it is
-- out of memory (noeviction): a full Redis refuses the session and nothing is written.
local skey, ikey, marker = KEYS[1], KEYS[2], KEYS[3]
local sid, idle, exp = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local data, limit, channel, base, uid = ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8]
local origin, deadline, strict = ARGV[9], tonumber(ARGV[10]), ARGV[13] == '1'

local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)
-- Lua numbers are doubles and redis.call would print big ones in %.14g:
-- format every large integer ourselves.
local function int(n) return string.format('%.0f', n) end

if now_ms > deadline then
  return redis.error_reply('ERR redis-jwt: late: the call ran past its deadline')
end
-- The ttl of a session created at Redis time now_ms.
local function ttl_at(ms) return math.min(idle * 1000, exp * 1000 - ms) end
local done = redis.call('GET', marker)
if done then
  local reply = {1}
  for word in string.gmatch(done, '%S+') do reply[#reply + 1] = word end
  if #reply == 2 then -- the short form: the creation time was the Redis time of the run
    reply[3] = int(ttl_at(math.floor(tonumber(done) / 1000)))
  end
  return reply
end

local cap_ms = exp * 1000 - now_ms
if cap_ms < 1 then
  return redis.error_reply('ERR redis-jwt: session expiry lies in the past')
end
local ttl_ms = ttl_at(now_ms)

local created = now_us
local victims, vanished, undeclared = {}, {}, {}
if limit > 0 then
  local members = redis.call('ZRANGEBYSCORE', ikey, '(' .. int(now_ms), '+inf', 'WITHSCORES')
  local declared = {}
  for i = 4, #KEYS do declared[KEYS[i]] = true end
  local live, fresh = {}, {}
  for i = 1, #members, 2 do
    local member = members[i]
    if strict and not declared[base .. member] then
      -- Added since the caller read the index: newer than every declared one,
      -- older than this one; ordered by expiry among themselves.
      fresh[#fresh + 1] = {tonumber(members[i + 1]), member}
    else
      local c = redis.call('HGET', base .. member, 'c')
      if c then
        live[#live + 1] = {tonumber(c), member}
      else
        vanished[#vanished + 1] = member -- deleted behind our back
      end
    end
  end
  local function older(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end
  table.sort(live, older)
  if #live > 0 and live[#live][1] >= created then
    created = live[#live][1] + 1 -- creation order must be strict for eviction
  end
  table.sort(fresh, older)
  for _, entry in ipairs(fresh) do live[#live + 1] = {entry[1], entry[2], true} end
  for i = 1, #live - limit + 1 do
    victims[#victims + 1] = live[i][2]
    if live[i][3] then undeclared[live[i][2]] = true end
  end
end

local reply = {int(created), int(ttl_ms)}
for _, victim in ipairs(victims) do reply[#reply + 1] = victim end
-- The first write (see above). The marker outlives every run that may still come.
-- Nothing evicted and created = now: the creation time alone tells the outcome
-- (the ttl follows from it and the arguments), and Redis stores it as an integer.
local outcome = table.concat(reply, ' ')
if #victims == 0 and created == now_us then outcome = reply[1] end
redis.call('SET', marker, outcome, 'PX', int(deadline - now_ms + 1))
for _, victim in ipairs(victims) do
  if not undeclared[victim] then
    redis.call('DEL', base .. victim)
  end -- else it ends with its index entry (verify requires it); its key expires by itself
  redis.call('ZREM', ikey, victim)
  if channel ~= '' then
    redis.call('PUBLISH', channel, cjson.encode({e = 'destroyed', u = uid, s = victim, r = 'evicted', o = origin}))
  end
end
for _, member in ipairs(vanished) do redis.call('ZREM', ikey, member) end
redis.call('ZREMRANGEBYSCORE', ikey, '-inf', int(now_ms))

local fields = {'c', int(created), 't', idle, 'x', int(exp)}
if data ~= '' then
  fields[#fields + 1] = 'd'
  fields[#fields + 1] = data
end
if ARGV[11] ~= '' then
  fields[#fields + 1] = 'ip'
  fields[#fields + 1] = ARGV[11]
end
if ARGV[12] ~= '' then
  fields[#fields + 1] = 'ua'
  fields[#fields + 1] = ARGV[12]
end
redis.call('HSET', skey, unpack(fields))
redis.call('PEXPIRE', skey, int(ttl_ms))
redis.call('ZADD', ikey, int(now_ms + ttl_ms), sid)
if redis.call('PTTL', ikey) < ttl_ms then
  redis.call('PEXPIRE', ikey, int(ttl_ms))
end
if channel ~= '' then
  redis.call('PUBLISH', channel, cjson.encode({e = 'created', u = uid, s = sid, o = origin}))
end
table.insert(reply, 1, 1)
return reply
