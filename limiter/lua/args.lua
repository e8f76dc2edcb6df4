-- args.lua: the head of decide.lua and undo.lua, which take the same
-- arguments (scripts.go joins it in after each one's shebang): Redis'
-- clock, the request's member, and each rule's arguments.
--
-- KEYS[i]  rule i's key, i = 1..n
-- ARGV[1]  the request's member base
-- ARGV[4i-1 .. 4i+2]  rule i's window (µs; a fixed rule: its period's
--          TTL), limit, cost and mode (shadow + 2 × algorithm)

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local member = ARGV[1]
local n = #KEYS

-- rule_at reads the four arguments of a rule from ARGV[a]: its window,
-- limit, cost, whether it is a shadow rule and its algorithm.
local function rule_at(a)
  local mode = tonumber(ARGV[a + 3])
  return tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), mode % 2 == 1, math.floor(mode / 2)
end

local function rule(i)
  return rule_at(4 * i - 1)
end
