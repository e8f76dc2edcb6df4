-- renew.lua keeps a lease in its Lease rule's window: a request that
-- lasts (a tunnel) renews it while it is open.
--
-- KEYS[1]  the Lease rule's sorted set
-- ARGV[1]  the lease's member
-- ARGV[2]  the rule's window, µs
--
-- Returns 1 when the lease was there and now dates from Redis' now, 0
-- when it was gone (released, or out of its window already).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if redis.call('ZADD', KEYS[1], 'XX', 'CH', now, ARGV[1]) == 0 then
  return 0
end
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) / 1000))
return 1
