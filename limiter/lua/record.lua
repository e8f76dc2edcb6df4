#!lua
-- record.lua: writes one admission decided on a replica (replica
-- consistency) to the primary. Idempotent: a member written twice is one.
--
-- KEYS[i]  the sorted set of rule i
-- ARGV[1]  the request's member base
-- ARGV[2i], ARGV[2i+1]  rule i's window (µs) and cost
--
-- The shebang: as decide.lua, checked for OOM and replicas before it runs.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, #KEYS do
  local window, cost = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  for j = 1, cost do
    redis.call('ZADD', KEYS[i], now, ARGV[1] .. ':' .. j)
  end
  redis.call('PEXPIRE', KEYS[i], math.ceil(window / 1000))
end
return #KEYS
