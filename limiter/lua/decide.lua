#!lua
-- decide.lua: one decision for every rule of a request, whatever each
-- rule's algorithm.
--
-- KEYS[i]          the key of rule i: <prefix>:{<tenant>}:<rule>, or
--                  <prefix>:{<tenant>}:shadow:<rule> for a shadow rule, then
--                  :sw for a sliding window, :fixed:<period start> for a
--                  fixed rule
-- ARGV[1]          the request's member base, unique per request (instance:sequence)
-- ARGV[2]          1 when the call may be a replay (sent again after a lost
--                  reply): the script then looks for its own record first;
--                  m for several requests of the same enforced rules, g for
--                  several groups of those, each of its own rules (see below)
-- ARGV[4i-1..4i+2] rule i's window (µs; a fixed rule: µs left in its
--                  period, by the gateway's clock), limit, cost and mode:
--                  1 for shadow (0 enforced) plus 2 x the algorithm (0 the
--                  sliding log, 1 the sliding window, 2 fixed)
--
-- A sliding log is a sorted set holding one member per unit of cost
-- admitted, scored with the Redis server's time in integer microseconds
-- (exact in a double). A sliding window is a hash: c counted in the fixed
-- bucket b (now // window), p in the bucket before; a fixed rule a hash
-- with its count c. Both keep m, the member of the last request counted,
-- for replays. The request is recorded in every rule only when every
-- enforced rule has room; a denied request is recorded nowhere. A shadow
-- rule never denies: it is decided as if it were enforced, and the request
-- is recorded in it only when it is admitted and the shadow rule had room.
-- Members are built from strings: Lua 5.1 prints a concatenated
-- microsecond timestamp as 1.7e+15.
--
-- Returns {allowed, remaining_1, reset_1, retry_1, ..., remaining_n, reset_n, retry_n},
-- times in µs: reset is when the oldest member leaves the window (a
-- sliding window: when all it counts has; fixed: the period's end), retry
-- (0 unless rule i denied, or would have for a shadow rule) when this
-- request would fit. allowed counts enforced rules only.
--
-- The shebang declares a write script to Redis 7: OOM and
-- min-replicas-to-write are checked before it runs, so a decision never
-- writes past maxmemory and is refused (NOREPLICAS) on a primary without
-- the replicas it needs.

-- now, member, n and rule(i) are args.lua's, weighted and window_at
-- window.lua's: scripts.go joins both in before this.

local function first_fit(q, l, window)
  if q <= l then
    return 0
  end
  local x = math.floor(window - (l + 1) * window / q) + 1
  x = math.min(math.max(x, 0), window)
  while x > 0 and weighted(q, window, x - 1) <= l do
    x = x - 1
  end
  while x < window and weighted(q, window, x) > l do
    x = x + 1
  end
  return x
end

-- roll reads a sliding window's hash, moved to the bucket of now
-- (window_at).
local function roll(key, window)
  local w = window_at(redis.call('HMGET', key, 'b', 'c', 'p', 'w'), window, now)
  w.used = w.c + weighted(w.p, window, math.max(now - w.b * window, 0))
  return w
end

-- keep_window writes w, a sliding window's state, to key, by window (w,
-- which stays in the hash, only when it is not window yet); m is the
-- member of the last request recorded, if one was.
local function keep_window(key, w, window, m)
  if w.unkept then
    redis.call('HSET', key, 'w', window)
  end
  if m then
    redis.call('HSET', key, 'b', w.b, 'c', w.c, 'p', w.p, 'm', m)
  else
    redis.call('HSET', key, 'b', w.b, 'c', w.c, 'p', w.p)
  end
  redis.call('PEXPIRE', key, math.ceil(2 * window / 1000))
end

-- window_reply is a sliding window's remaining, reset and retry for a
-- request of cost, from w as it stands after the request (recorded or
-- not); over when the request did not fit.
local function window_reply(w, window, limit, cost, over)
  local reset, retry = 0, 0
  if w.c > 0 then
    reset = (w.b + 2) * window - now
  elseif w.p > 0 then
    reset = (w.b + 1) * window - now
  end
  if over then
    if cost > limit then
      retry = window
    elseif w.c + cost <= limit then
      retry = math.max(w.b * window + first_fit(w.p, limit - w.c - cost, window) - now, 1)
    else
      retry = math.max((w.b + 1) * window + first_fit(w.c, limit - cost, window) - now, 1)
    end
  end
  return math.max(limit - w.used, 0), reset, retry
end

-- fast decides the requests whose members are ARGV[first..last] by the m
-- enforced rules whose keys are KEYS[k0 + 1 .. k0 + m] and whose
-- arguments start at ARGV[a0 + 1], and appends each one's reply to out.
local function fast(k0, a0, m, first, last, out)
  local st = {}
  for i = 1, m do
    local window, limit, cost, _, algo = rule_at(a0 + 4 * i - 3)
    -- every field in the constructor: one allocation, no rehash
    local r = {key = KEYS[k0 + i], window = window, limit = limit, cost = cost, algo = algo,
      before = 0, used = 0, args = false, oldest = false, w = false, start = 0, over = false}
    if algo == 0 then
      redis.call('ZREMRANGEBYSCORE', r.key, '-inf', now - window)
      r.before = redis.call('ZCARD', r.key)
      r.used, r.args = r.before, {}
      if r.before > 0 then
        r.oldest = tonumber(redis.call('ZRANGE', r.key, 0, 0, 'WITHSCORES')[2])
      end
    elseif algo == 1 then
      r.w = roll(r.key, window)
      r.used = r.w.used
    else
      r.used = tonumber(redis.call('HGET', r.key, 'c')) or 0
      r.start = r.used
    end
    st[i] = r
  end
  local admitted, admits = nil, 0
  for a = first, last do
    local allowed = 1
    for i = 1, m do
      local r = st[i]
      r.over = r.used + r.cost > r.limit
      if r.over then
        allowed = 0
      end
    end
    if allowed == 1 then
      admitted, admits = ARGV[a], admits + 1
    end
    out[#out + 1] = allowed
    for i = 1, m do
      local r = st[i]
      local window, limit, cost = r.window, r.limit, r.cost
      if allowed == 1 then
        r.used = r.used + cost
        if r.algo == 0 then
          for j = 1, cost do
            r.args[#r.args + 1] = now
            r.args[#r.args + 1] = ARGV[a] .. ':' .. j
            if #r.args == 200 then -- unpack's stack is bounded
              redis.call('ZADD', r.key, unpack(r.args))
              r.args = {}
            end
          end
          r.oldest = math.min(r.oldest or now, now)
        elseif r.algo == 1 then
          r.w.c, r.w.used = r.w.c + cost, r.w.used + cost
        end
      end
      local remaining, reset, retry = math.max(limit - r.used, 0), 0, 0
      if r.algo == 0 then
        if r.oldest then
          reset = r.oldest + window - now
        end
        if r.over and cost > limit then
          retry = window
        elseif r.over then
          local at, score = r.used + cost - limit - 1, now
          if at < r.before then
            score = tonumber(redis.call('ZRANGE', r.key, at, at, 'WITHSCORES')[2])
            if r.used > r.before then -- this call's own units sort first (see above)
              score = math.min(score, now)
            end
          end
          retry = math.max(score + window - now, 1)
        end
      elseif r.algo == 1 then
        remaining, reset, retry = window_reply(r.w, window, limit, cost, r.over)
      else
        reset = math.max(window, 1)
        if r.over then
          retry = reset
        end
      end
      out[#out + 1] = remaining
      out[#out + 1] = reset
      out[#out + 1] = retry
    end
  end
  for i = 1, m do
    local r = st[i]
    if r.algo == 0 then
      if #r.args > 0 then
        redis.call('ZADD', r.key, unpack(r.args))
      end
      if r.used > r.before then
        redis.call('PEXPIRE', r.key, math.ceil(r.window / 1000))
      end
    elseif r.algo == 1 then
      if admitted or r.w.moved then -- moved: kept by this window from now on
        keep_window(r.key, r.w, r.window, admitted)
      end
    elseif admitted then
      if r.used - r.start < 2 ^ 53 then
        redis.call('HINCRBY', r.key, 'c', r.used - r.start)
      else -- a Lua number past 2^53 is not exact, and Redis reads 1e+17 as no integer
        for _ = 1, admits do
          redis.call('HINCRBY', r.key, 'c', ARGV[a0 + 4 * i - 1])
        end
      end
      redis.call('HSET', r.key, 'm', admitted)
      redis.call('PEXPIRE', r.key, math.ceil(r.window / 1000))
    end
  end
end

-- Several groups (ARGV[2] 'g'): requests of other tenants, or other
-- rules, in one call, where the keys may be in different slots (not
-- Cluster). ARGV[3] is the number of groups; each group is then its
-- number of rules m and of requests k, its rules' 4m arguments and its k
-- members; its m keys follow the group before's in KEYS. Each group is
-- decided as a shared call of its own would be, in order, and its
-- replies appended. A group that fails (a key of another type, say) is
-- answered -1 for each of its requests, with three zeros per rule, and
-- the others go on: the gateway sends it again alone for its error. The
-- reads all come before the writes, so such a failure writes nothing,
-- unless a counter's write fails after another rule's (a field no longer
-- an integer): sent again, a log's units go in under the same members,
-- counted once, but a sliding window's count is added twice.
if ARGV[2] == 'g' then
  local out, k0, a = {}, 0, 4
  for _ = 1, tonumber(ARGV[3]) do
    local m, k = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
    local first = a + 2 + 4 * m
    local before = #out
    if not pcall(fast, k0, a + 1, m, first, first + k - 1, out) then
      for j = #out, before + 1, -1 do
        out[j] = nil
      end
      for _ = 1, k do
        out[#out + 1] = -1
        for _ = 1, 3 * m do
          out[#out + 1] = 0
        end
      end
    end
    k0, a = k0 + m, first + k
  end
  return out
end

-- First sends of enforced rules, the commonest decisions: one request
-- (ARGV[2] '0', its member ARGV[1]), or the requests of a batch with the
-- same rules (the pipe merges them, lane.go: ARGV[2] 'm', their members
-- ARGV[3+4n..]). It returns before the general path below builds its
-- closures and tables, which are a third of the script's time. Each key is
-- read once, the requests are decided in order against the running
-- counts, each as it would be alone, and each key is written once; the
-- reply is each request's {allowed, remaining_i, reset_i, retry_i …} in
-- turn: for one request, what the general path answers.
--
-- A sliding log's admitted units are added as they come, 100 to a ZADD,
-- mostly in one at the end. They all score now, after every unit already
-- in the set, so a denied request's retry finds the unit it waits for
-- among those (by rank) or among this call's own. Should Redis' clock
-- have stepped back behind a member, the units this call has admitted
-- sort before it, as they would alone: once there are some, the oldest
-- and the unit waited for are taken as now. A counter's m is the last
-- admitted request's member, as if the requests had come one by one.
local shared = ARGV[2] == 'm'
local enforced = true
for i = 1, n do
  if tonumber(ARGV[4 * i + 2]) % 2 == 1 then
    enforced = false
  end
end
if shared and not enforced then
  return redis.error_reply('ERR decide.lua: a shared call takes enforced rules only')
end
if shared or ARGV[2] == '0' and enforced then
  local first, last = 1, 1 -- the members: alone, ARGV[1]
  if shared then
    first, last = 3 + 4 * n, #ARGV
  end
  local out = {}
  fast(0, 2, n, first, last, out)
  return out
end

-- A call repeated after a lost reply finds its request recorded already:
-- in every enforced set, and in the shadow sets that had room, so any set
-- holding it will do. Only a call sent again asks: the first send never
-- finds one.
local replay = false
if ARGV[2] == '1' then
  for i = 1, n do
    local _, _, _, _, algo = rule(i)
    if algo == 0 and redis.call('ZSCORE', KEYS[i], member .. ':1') or
      algo > 0 and redis.call('HGET', KEYS[i], 'm') == member then
      replay = true
      break
    end
  end
end

local used, over, win = {}, {}, {}
local allowed = 1
for i = 1, n do
  local window, limit, cost, shadow, algo = rule(i)
  if algo == 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
    used[i] = redis.call('ZCARD', KEYS[i])
  elseif algo == 1 then
    win[i] = roll(KEYS[i], window)
    used[i] = win[i].used
  else
    used[i] = tonumber(redis.call('HGET', KEYS[i], 'c')) or 0
  end
  over[i] = not replay and used[i] + cost > limit
  if over[i] and not shadow then
    allowed = 0
  end
end

-- settle_window records rule i, a sliding window, when record is true, and
-- returns its remaining, reset and retry.
local function settle_window(i, record)
  local key, w = KEYS[i], win[i]
  local window, limit, cost = rule(i)
  if record then
    w.c, w.used = w.c + cost, w.used + cost
    keep_window(key, w, window, member)
  elseif w.moved then
    keep_window(key, w, window, nil)
  end
  return window_reply(w, window, limit, cost, over[i])
end

-- settle_fixed records rule i, a fixed rule, when record is true, and
-- returns its remaining, reset and retry: its period ends in ttl µs.
local function settle_fixed(i, record)
  local key = KEYS[i]
  local ttl, limit = rule(i)
  local u = used[i]
  if record then
    u = redis.call('HINCRBY', key, 'c', ARGV[4 * i + 1])
    redis.call('HSET', key, 'm', member)
    redis.call('PEXPIRE', key, math.ceil(ttl / 1000))
  end
  local retry = 0
  if over[i] then
    retry = math.max(ttl, 1)
  end
  return math.max(limit - u, 0), math.max(ttl, 1), retry
end

-- log_record records cost units of a sliding log that counted used, and
-- returns its reset: when its oldest member leaves the window.
local function log_record(key, window, cost, used)
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
  if used == 0 then
    return window -- this request is the oldest: no need to ask
  end
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return tonumber(oldest[2]) + window - now
end

-- settle_log records rule i, a sliding log, when record is true, and
-- returns its remaining, reset and retry.
local function settle_log(i, record)
  local key = KEYS[i]
  local window, limit, cost = rule(i)
  local reset, retry = 0, 0
  if record then
    reset = log_record(key, window, cost, used[i])
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
  return math.max(limit - used[i], 0), reset, retry
end

local settle = {[0] = settle_log, settle_window, settle_fixed}
local out = {allowed}
for i = 1, n do
  local _, _, _, _, algo = rule(i)
  local remaining, reset, retry = settle[algo](i, allowed == 1 and not replay and not over[i])
  out[#out + 1] = remaining
  out[#out + 1] = reset
  out[#out + 1] = retry
end
return out
