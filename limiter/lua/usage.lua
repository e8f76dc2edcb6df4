#!lua flags=no-writes,allow-oom
-- usage.lua: read-only; what each rule has used, without recording or
-- trimming anything (EVAL_RO runs it on a replica).
--
-- KEYS[i]  the sorted set of rule i
-- ARGV[i]  rule i's window (µs)
--
-- Returns {used_1, reset_1, ..., used_n, reset_n}: the members inside the
-- window, and µs until the oldest of them leaves it (0 when none).
--
-- The shebang: as peek.lua, read-only and allowed under OOM.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
for i = 1, #KEYS do
  local window = tonumber(ARGV[i])
  local from = now - window + 1 -- scores at or before now - window are out
  local used = redis.call('ZCOUNT', KEYS[i], from, '+inf')
  local reset = 0
  local oldest = redis.call('ZRANGEBYSCORE', KEYS[i], from, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if oldest[2] then
    reset = tonumber(oldest[2]) + window - now
  end
  out[#out + 1] = used
  out[#out + 1] = reset
end
return out
