#!lua
-- decide.lua: one sliding-log decision for every rule of a request.
--
-- KEYS[i]          the sorted set of rule i: <prefix>:{<tenant>}:<rule>, or
--                  <prefix>:{<tenant>}:shadow:<rule> for a shadow rule
-- ARGV[1]          the request's member base, unique per request (instance:sequence)
-- ARGV[2]          1 when the call may be a replay (sent again after a lost
--                  reply): the script then looks for its own record first
-- ARGV[4i-1..4i+2] rule i's window (µs), limit, cost and mode (1 shadow,
--                  0 enforced)
--
-- Each set holds one member per unit of cost admitted, scored with the
-- Redis server's time in integer microseconds (exact in a double). The
-- request is recorded in every set only when every enforced rule has room;
-- a denied request is recorded nowhere. A shadow rule never denies: it is
-- decided as if it were enforced, and the request is recorded in its set
-- only when it is admitted and the shadow rule had room. Members are built
-- from strings: Lua 5.1 prints a concatenated microsecond timestamp as
-- 1.7e+15.
--
-- Returns {allowed, remaining_1, reset_1, retry_1, ..., remaining_n, reset_n, retry_n},
-- times in µs: reset is when the oldest member leaves the window, retry
-- (0 unless rule i denied, or would have for a shadow rule) when this
-- request would fit. allowed counts enforced rules only.
--
-- The shebang declares a write script to Redis 7: OOM and
-- min-replicas-to-write are checked before it runs, so a decision never
-- writes past maxmemory and is refused (NOREPLICAS) on a primary without
-- the replicas it needs.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local member = ARGV[1]
local n = #KEYS

local function rule(i)
  local a = 4 * i - 1
  return tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), ARGV[a + 3] == '1'
end

-- A call repeated after a lost reply finds its request recorded already:
-- in every enforced set, and in the shadow sets that had room, so any set
-- holding it will do. Only a call sent again asks: the first send never
-- finds one.
local replay = false
if ARGV[2] == '1' then
  for i = 1, n do
    if redis.call('ZSCORE', KEYS[i], member .. ':1') then
      replay = true
      break
    end
  end
end

local used, over = {}, {}
local allowed = 1
for i = 1, n do
  local window, limit, cost, shadow = rule(i)
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  used[i] = redis.call('ZCARD', KEYS[i])
  over[i] = not replay and used[i] + cost > limit
  if over[i] and not shadow then
    allowed = 0
  end
end

local out = {allowed}
for i = 1, n do
  local key = KEYS[i]
  local window, limit, cost = rule(i)
  local reset, retry = 0, 0
  if allowed == 1 and not replay and not over[i] then
    local args = {} -- one ZADD per 100 units: unpack's stack is bounded
    for j = 1, cost do
      args[#args + 1] = now
      args[#args + 1] = member .. ':' .. j
      if #args == 200 or j == cost then
        redis.call('ZADD', key, unpack(args))
        args = {}
      end
    end
    redis.call('PEXPIRE', key, math.ceil(window / 1000))
    if used[i] == 0 then
      reset = window -- this request is the oldest: no need to ask
    end
    used[i] = used[i] + cost
  end
  if reset == 0 and used[i] > 0 then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    reset = tonumber(oldest[2]) + window - now
  end
  if over[i] then -- so not recorded: used[i] is as counted
    if cost > limit then
      retry = window
    else
      -- The request fits once the (used + cost - limit) oldest units leave.
      local m = redis.call('ZRANGE', key, used[i] + cost - limit - 1, used[i] + cost - limit - 1, 'WITHSCORES')
      retry = math.max(tonumber(m[2]) + window - now, 1)
    end
  end
  out[#out + 1] = math.max(limit - used[i], 0)
  out[#out + 1] = reset
  out[#out + 1] = retry
end
return out
