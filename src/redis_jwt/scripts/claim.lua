-- redis-jwt layout v1: claim the due entries of one schedule bucket for one sweeper.
-- KEYS[1] schedule bucket   <prefix>:{x<b>}:due
-- ARGV[1] most entries to claim
-- ARGV[2] lease (ms): claimed entries become due again after it, so that a
--         sweeper that dies mid-way delays them but never loses them
-- Returns {now_ms, key1, due_ms1, key2, due_ms2, ...}: the claimed session keys
-- and when each came due (its end, for a session that ended), on Redis's clock.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function int(n) return string.format('%.0f', n) end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', int(now_ms), 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[1]))
local lease = int(now_ms + tonumber(ARGV[2]))
local reply = {int(now_ms)}
for i = 1, #due, 2 do
  redis.call('ZADD', KEYS[1], 'XX', lease, due[i])
  reply[#reply + 1] = due[i]
  reply[#reply + 1] = due[i + 1]
end
return reply
