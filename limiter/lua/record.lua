#!lua
-- record.lua: writes one admission decided on a replica (replica
-- consistency) to the primary. Idempotent: a member written twice is one,
-- and keeps its first score (NX): a request decided on the primary, whose
-- members decide.lua wrote, is recorded again only for its ordinals.
--
-- KEYS[i]    the sorted set of rule i (i = 1..n)
-- KEYS[n+i]  rule i's high-water hash: per gateway instance, the highest
--            ordinal of its admissions recorded in the set (peek.lua reads
--            it; a store's ordinals of a key only grow, and its instance
--            is never another store's)
-- ARGV[1]    the request's member base
-- ARGV[2]    the gateway's instance
-- ARGV[3i], ARGV[3i+1], ARGV[3i+2]  rule i's window (µs), cost and the
--            admission's ordinal in the gateway's pending log of the rule
--
-- The shebang: as decide.lua, checked for OOM and replicas before it runs.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS / 2
for i = 1, n do
  local window, cost, ord = tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1]), ARGV[3 * i + 2]
  local ttl = math.ceil(window / 1000)
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  for j = 1, cost do
    redis.call('ZADD', KEYS[i], 'NX', now, ARGV[1] .. ':' .. j)
  end
  redis.call('PEXPIRE', KEYS[i], ttl)
  -- never back: a record sent again after a later one (the recorder's
  -- retry) must not hide what the later one showed
  local hw = tonumber(redis.call('HGET', KEYS[n + i], ARGV[2]))
  if not hw or hw < tonumber(ord) then
    redis.call('HSET', KEYS[n + i], ARGV[2], ord)
  end
  redis.call('PEXPIRE', KEYS[n + i], ttl)
end
return n
