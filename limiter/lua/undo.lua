-- undo.lua: takes back what decide.lua recorded for one request, on
-- Redis Cluster, when a later call of the same request (its rules in
-- another slot) refused it. It answers as decide.lua would have for the
-- rules had it not recorded the request.
--
-- KEYS, ARGV[1..2+4n] decide.lua's call (ARGV[2] unused)
-- ARGV[2+4n+i]     -1 when rule i was not recorded (a shadow rule without
--                  room), else the reset decide.lua answered for it (µs)
--
-- A sliding log loses the request's members; a sliding window's bucket
-- (the one the reset names) and a fixed rule's count lose its cost, once:
-- u keeps the member of the last request undone, so a call sent again
-- after a lost reply changes nothing. A key gone meanwhile is left gone.
--
-- Returns {remaining_1, reset_1, ..., remaining_n, reset_n} at now, in µs.

-- now, member, n and rule(i) are args.lua's, weighted and window_at
-- window.lua's: scripts.go joins both in before this.

-- first_undo reports whether the hash at key still counts the request:
-- it exists and u does not name it (and marks it undone).
local function first_undo(key)
  if redis.call('EXISTS', key) == 0 or redis.call('HGET', key, 'u') == member then
    return false
  end
  redis.call('HSET', key, 'u', member)
  return true
end

local function undo_log(key, window, limit, cost, rec)
  if rec >= 0 then
    local m = {} -- one ZREM per 200 members: unpack's stack is bounded
    for j = 1, cost do
      m[#m + 1] = member .. ':' .. j
      if #m == 200 or j == cost then
        redis.call('ZREM', key, unpack(m))
        m = {}
      end
    end
  end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local used, reset = redis.call('ZCARD', key), 0
  if used > 0 then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    reset = tonumber(oldest[2]) + window - now
  end
  return math.max(limit - used, 0), reset
end

local function undo_window(key, window, limit, cost, rec)
  local h = redis.call('HMGET', key, 'b', 'c', 'p', 'w')
  -- A hash kept by another window since (a reload) no longer tells the
  -- bucket the request was recorded into: it stays counted.
  if rec >= 0 and (tonumber(h[4]) or window) == window and first_undo(key) then
    local hb, c, p = tonumber(h[1]) or 0, tonumber(h[2]) or 0, tonumber(h[3]) or 0
    -- decide.lua's reset was (b + 2) x window - its now, less than a
    -- window ago: b is the bucket it recorded into.
    local b = math.floor((rec + now) / window) - 2
    if hb == b then
      c = math.max(c - cost, 0)
    elseif hb == b + 1 then -- a later request rolled the bucket: ours is p
      p = math.max(p - cost, 0)
    end
    redis.call('HSET', key, 'c', c, 'p', p)
    h[2], h[3] = c, p
  end
  local w = window_at(h, window, now)
  local used = w.c + weighted(w.p, window, math.max(now - w.b * window, 0))
  local reset = 0
  if w.c > 0 then
    reset = (w.b + 2) * window - now
  elseif w.p > 0 then
    reset = (w.b + 1) * window - now
  end
  return math.max(limit - used, 0), reset
end

local function undo_fixed(key, ttl, limit, cost, rec)
  if rec >= 0 and first_undo(key) then
    local c = redis.call('HINCRBY', key, 'c', -cost)
    if c < 0 then
      redis.call('HSET', key, 'c', 0)
    end
  end
  local used = tonumber(redis.call('HGET', key, 'c')) or 0
  return math.max(limit - used, 0), math.max(ttl, 1)
end

local undo = {[0] = undo_log, undo_window, undo_fixed}
local out = {}
for i = 1, n do
  local window, limit, cost, _, algo = rule(i)
  local rec = tonumber(ARGV[2 + 4 * n + i])
  local remaining, reset = undo[algo](KEYS[i], window, limit, cost, rec)
  out[#out + 1] = remaining
  out[#out + 1] = reset
end
return out
