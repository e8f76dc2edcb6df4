#!lua flags=no-writes,allow-oom
-- peek.lua: read-only; the replica-consistency decision. Runs with
-- EVALSHA_RO on the local replica and writes nothing.
--
-- KEYS[i]    the sorted set of rule i (a shadow rule's own, as
--            decide.lua), i = 1..n
-- KEYS[n+i]  rule i's high-water hash (record.lua writes it)
-- ARGV[1]    this gateway's instance
-- ARGV, then per rule in order: window (µs), limit, cost, mode (1 shadow,
--          0 enforced), then this gateway's admissions, oldest first, that
--          may not have reached the replica yet (pending): their ordinals
--          are consecutive, and the high-water hash names the last one
--          recorded. Either 0 (none); or -1, then the first pending
--          admission's ordinal, their count and the cost of each (all the
--          same); or -2, then the first ordinal, the count and each one's
--          cost in turn.
--
-- This gateway writes its records in order over one connection and the
-- replica applies them in order, so the pending admissions it already
-- shows are the oldest ones: a prefix. The rest count on top of the
-- replica's.
--
-- Returns {allowed, then per rule: remaining, reset, retry, visible}:
-- allowed counts enforced rules only, as in decide.lua; reset is µs until
-- the replica's oldest entry leaves the window (0: none); retry is 0
-- unless the rule denied (a shadow rule: would have), else µs until the
-- request fits, or -m when it fits only once m units of the pending
-- entries the replica does not show have left the window (the gateway
-- knows their times); visible is how many pending entries the replica
-- shows (the gateway drops them).
--
-- The shebang flags it read-only (EVALSHA_RO, replicas) and lets it run
-- while Redis is out of memory: it writes nothing.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS / 2
local pos = 2
local rules = {}
local allowed = 1

for i = 1, n do
  local r = {window = tonumber(ARGV[pos]), limit = tonumber(ARGV[pos + 1]), cost = tonumber(ARGV[pos + 2])}
  local shadow = ARGV[pos + 3] == '1'
  local np = tonumber(ARGV[pos + 4])
  local first = pos + 5
  r.from = now - r.window + 1
  r.replica = redis.call('ZCOUNT', KEYS[i], r.from, '+inf')
  r.visible = 0
  local invisible = 0
  pos = first
  if np < 0 then
    local ord, count = tonumber(ARGV[first]), tonumber(ARGV[first + 1])
    local hw = tonumber(redis.call('HGET', KEYS[n + i], ARGV[1]))
    if hw then
      r.visible = math.min(math.max(hw - ord + 1, 0), count)
    end
    if np == -1 then
      invisible = (count - r.visible) * tonumber(ARGV[first + 2])
      pos = first + 3
    else -- entry j's cost is ARGV[first + 1 + j]
      for j = r.visible + 1, count do
        invisible = invisible + tonumber(ARGV[first + 1 + j])
      end
      pos = first + 2 + count
    end
  end
  r.used = r.replica + invisible
  r.over = r.used + r.cost > r.limit
  if r.over and not shadow then
    allowed = 0
  end
  rules[i] = r
end

local out = {allowed}
for i = 1, n do
  local r = rules[i]
  local reset, retry = 0, 0
  local oldest = redis.call('ZRANGEBYSCORE', KEYS[i], r.from, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if oldest[2] then
    reset = tonumber(oldest[2]) + r.window - now
  end
  if r.over then
    local k = r.used + r.cost - r.limit -- units that must leave the window
    if r.cost > r.limit then
      retry = r.window
    elseif k <= r.replica then
      local m = redis.call('ZRANGEBYSCORE', KEYS[i], r.from, '+inf', 'WITHSCORES', 'LIMIT', k - 1, 1)
      retry = math.max(tonumber(m[2]) + r.window - now, 1)
    else
      retry = r.replica - k
    end
  end
  out[#out + 1] = math.max(r.limit - r.used, 0)
  out[#out + 1] = reset
  out[#out + 1] = retry
  out[#out + 1] = r.visible
end
return out
