-- redis-jwt layout "redis-jwt" (Node interop): verify one session, optionally extending
-- it and loading its value.
-- KEYS[1] session key <user id>:<session id>
-- ARGV[1] flags: 1 = extend to ARGV[2], 2 = return the stored value
-- ARGV[2] the ttl in ms to extend to; never shortens, never adds an expiry to a key without one
-- Returns {ttl in ms (-1: no expiry), value or false}; {-2} when the session does not exist.
local pttl = redis.call('PTTL', KEYS[1])
if pttl == -2 then
  return {-2}
end
local flags = tonumber(ARGV[1])
if flags % 2 == 1 then
  local want = tonumber(ARGV[2])
  if pttl >= 0 and want > pttl then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    pttl = want
  end
end
if math.floor(flags / 2) % 2 == 1 then
  -- A key of another type is not a session value: report no value, not an error.
  local value = redis.pcall('GET', KEYS[1])
  if type(value) ~= 'string' then
    value = false
  end
  return {pttl, value}
end
return {pttl}
