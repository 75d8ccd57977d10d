-- redis-jwt layout v1: put a new session on the expiry schedule (one bucket, one slot).
-- KEYS[1] schedule bucket   <prefix>:{x<b>}:due   ZSET session key -> expiry (ms)
-- ARGV[1] session key
-- ARGV[2] idle ttl, whole seconds
-- ARGV[3] absolute expiry (JWT exp), unix seconds
-- ARGV[4] horizon (ms): entries overdue by longer are dropped (no sweeper ran meanwhile)
-- Sent in the same round trip as sign.lua, just after it: the due time below
-- is never earlier than the session key's own expiry on the same clock.
-- Returns the due time (ms).
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function int(n) return string.format('%.0f', n) end
local due = now_ms + math.min(tonumber(ARGV[2]) * 1000, tonumber(ARGV[3]) * 1000 - now_ms)
local horizon = tonumber(ARGV[4])
redis.call('ZADD', KEYS[1], int(due), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', int(now_ms - horizon))
local keep = due - now_ms + horizon
if redis.call('PTTL', KEYS[1]) < keep then
  redis.call('PEXPIRE', KEYS[1], int(keep))
end
return int(due)
