-- renew.lua keeps a lease in its Lease rule's window: a request that
-- lasts (a tunnel) renews it while it is open.
--
-- KEYS[1]  the Lease rule's sorted set
-- ARGV[1]  the lease's member
-- ARGV[2]  the rule's window, µs
-- ARGV[3]  the rule's limit
--
-- A lease Redis lost (a restart without its data, an eviction, a
-- failover to a replica that had not seen it) or that left its window
-- unrenewed is taken again, as a decision would take it, when the set
-- has room: otherwise the request would not count for the rest of its
-- life. The script cannot tell such a lease from one given back: the
-- gateway renews a lease only until it gives it back.
--
-- Returns 1 when the lease was held and now dates from Redis' now, 2 when
-- it was gone and is taken again, 0 when it was gone and the set is full
-- (the request goes on uncounted; the next renewal tries again).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not held and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
if held then
  return 1
end
return 2
