-- redis-jwt layout v1: spend a refresh token of a pair and move its chain on.
-- KEYS[1] session key   <prefix>:{<tag>}:s:<sid>
-- KEYS[2] index key     <prefix>:{<tag>}:i
-- KEYS[3] call marker   <prefix>:{<tag>}:q:<call id>   (the outcome, kept until the deadline)
-- ARGV[1] session id
-- ARGV[2] generation of the refresh token presented (its 'gen' claim)
-- ARGV[3] grace, ms: how long the generation before the current one still continues the chain
-- ARGV[4] new public data as JSON, '' to keep it
-- ARGV[5] pub/sub channel for session events, '' for none
-- ARGV[6] user id (for event messages)
-- ARGV[7] origin: id of the publishing RedisJWT instance (event field 'o')
-- ARGV[8] deadline, unix ms: past it the caller was told the call failed, so it must not apply
-- Returns {1, current generation, ttl in ms, public data JSON or ''} when the chain
-- continues; {-2} when the session is gone; {-3} when the token was spent before the
-- grace (the session is ended, reason 'refresh_reuse'); {-4} for a generation never issued.
-- A second run of the same call (a retry after a lost reply) returns the first outcome.
local skey, ikey, marker = KEYS[1], KEYS[2], KEYS[3]
local sid, gen, grace_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local public, channel, uid, origin = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local deadline = tonumber(ARGV[8])

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function int(n) return string.format('%.0f', n) end

if now_ms > deadline then
  return redis.error_reply('ERR redis-jwt: late: the call ran past its deadline')
end
local done = redis.call('GET', marker)
if done then
  local reply = {}
  for word in string.gmatch(done, '%S+') do reply[#reply + 1] = tonumber(word) end
  if reply[1] == 1 then
    -- The public data is JSON (spaces and all): read it again rather than keep it here.
    reply[4] = redis.call('HGET', skey, 'p') or ''
  end
  return reply
end
local keep_ms = int(deadline - now_ms + 1)

-- A session counts only while its index entry exists (as for verify); a
-- missing session key reads as no fields below.
if not redis.call('ZSCORE', ikey, sid) then
  return {-2}
end
local fields = redis.call('HMGET', skey, 't', 'x', 'g', 'r')
local idle, exp = tonumber(fields[1]), tonumber(fields[2])
local current, since_ms = tonumber(fields[3]) or 0, tonumber(fields[4]) or 0
if not (idle and exp) then
  return {-2} -- not a session of this library
end
if gen > current then
  return {-4}
end
if gen < current and not (gen == current - 1 and now_ms - since_ms < grace_ms) then
  -- Theft or replay: end the whole session. DEL comes first, which Redis
  -- allows when it is full, so that a full Redis still ends a stolen session.
  redis.call('DEL', skey)
  redis.call('ZREM', ikey, sid)
  redis.call('SET', marker, '-3', 'PX', keep_ms)
  if channel ~= '' then
    redis.call('PUBLISH', channel, cjson.encode({e = 'destroyed', u = uid, s = sid, r = 'refresh_reuse', o = origin}))
  end
  return {-3}
end

local ttl_ms = math.min(idle * 1000, exp * 1000 - now_ms)
if ttl_ms < 1 then
  return {-2}
end
-- The presented generation is spent now; the one before the current one, within
-- the grace, continues the chain on the current generation (no second branch).
local spent = gen == current
if spent then
  current = current + 1
end
-- The first write is SET, which Redis refuses when it is out of memory
-- (noeviction): a full Redis refuses the refresh and nothing is written.
redis.call('SET', marker, '1 ' .. int(current) .. ' ' .. int(ttl_ms), 'PX', keep_ms)
if spent then
  redis.call('HSET', skey, 'g', int(current), 'r', int(now_ms))
end
if public ~= '' then
  redis.call('HSET', skey, 'p', public)
end
redis.call('PEXPIRE', skey, int(ttl_ms))
redis.call('ZADD', ikey, int(now_ms + ttl_ms), sid)
if redis.call('PTTL', ikey) < ttl_ms then
  redis.call('PEXPIRE', ikey, int(ttl_ms))
end
return {1, current, ttl_ms, redis.call('HGET', skey, 'p') or ''}
