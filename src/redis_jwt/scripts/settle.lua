-- redis-jwt layout v1: settle claimed schedule entries of one bucket, reporting expiries once.
-- KEYS[1] schedule bucket   <prefix>:{x<b>}:due
-- KEYS[2] expiry log        <prefix>:{x<b>}:gone  ZSET session key -> when reported (ms)
-- ARGV[1] pub/sub channel ('' for none), ARGV[2] origin (event field 'o')
-- ARGV[3] how long the expiry log keeps an entry (ms)
-- ARGV[4] horizon of the schedule (ms, as in schedule.lua)
-- then, per entry, 4 values: session key, user id, session id, ms left (-2: ended)
-- An ended session is logged and announced only if it is not in the log yet,
-- so that two sweepers settling the same entry report it once.
-- Returns the session keys reported as expired.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function int(n) return string.format('%.0f', n) end
local due, gone, channel, origin = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
local keep, horizon = tonumber(ARGV[3]), tonumber(ARGV[4])
local reported, later = {}, 0
for i = 5, #ARGV, 4 do
  local member, left = ARGV[i], tonumber(ARGV[i + 3])
  if left > 0 then
    redis.call('ZADD', due, 'XX', int(now_ms + left), member)
    if left > later then later = left end
  else
    redis.call('ZREM', due, member)
    if redis.call('ZADD', gone, 'NX', int(now_ms), member) == 1 then
      reported[#reported + 1] = member
      if channel ~= '' then
        redis.call('PUBLISH', channel, cjson.encode({e = 'expired', u = ARGV[i + 1], s = ARGV[i + 2], o = origin}))
      end
    end
  end
end
if later > 0 and redis.call('PTTL', due) < later + horizon then
  redis.call('PEXPIRE', due, int(later + horizon))
end
if #reported > 0 then
  redis.call('ZREMRANGEBYSCORE', gone, '-inf', int(now_ms - keep))
  redis.call('PEXPIRE', gone, int(keep))
end
return reported
