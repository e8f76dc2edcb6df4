#!lua flags=no-writes,allow-oom
-- usage.lua: read-only; what each rule has used, without recording or
-- trimming anything (EVAL_RO runs it on a replica).
--
-- KEYS[i]      the key of rule i (as decide.lua's)
-- ARGV[2i-1]   rule i's window (µs; a fixed rule: µs left in its period)
-- ARGV[2i]     rule i's mode, as decide.lua's (2 x the algorithm + shadow)
--
-- Returns {used_1, reset_1, ..., used_n, reset_n}: what the rule counts
-- now (a sliding log: the members inside the window; a sliding window:
-- its weighted count; fixed: the period's count), and µs until the oldest
-- member leaves the window (a sliding window: until all it counts has;
-- fixed: the period's end; 0 when nothing is counted).
--
-- The shebang: as peek.lua, read-only and allowed under OOM.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local function log(key, window)
  local from = now - window + 1 -- scores at or before now - window are out
  local used = redis.call('ZCOUNT', key, from, '+inf')
  local oldest = redis.call('ZRANGEBYSCORE', key, from, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if oldest[2] then
    return used, tonumber(oldest[2]) + window - now
  end
  return used, 0
end

-- sliding is decide.lua's roll, read-only (window.lua's window_at).
local function sliding(key, window)
  local w = window_at(redis.call('HMGET', key, 'b', 'c', 'p', 'w'), window, now)
  local used = w.c + weighted(w.p, window, math.max(now - w.b * window, 0))
  if w.c > 0 then
    return used, (w.b + 2) * window - now
  elseif w.p > 0 then
    return used, (w.b + 1) * window - now
  end
  return used, 0
end

local out = {}
for i = 1, #KEYS do
  local window, algo = tonumber(ARGV[2 * i - 1]), math.floor(tonumber(ARGV[2 * i]) / 2)
  local used, reset
  if algo == 0 then
    used, reset = log(KEYS[i], window)
  elseif algo == 1 then
    used, reset = sliding(KEYS[i], window)
  else
    used, reset = tonumber(redis.call('HGET', KEYS[i], 'c')) or 0, math.max(window, 1)
  end
  out[#out + 1] = used
  out[#out + 1] = reset
end
return out
