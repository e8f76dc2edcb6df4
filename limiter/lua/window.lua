-- window.lua: the sliding window's arithmetic, the same as
-- limiter/algorithm.go's; scripts.go joins it into decide.lua, undo.lua
-- and usage.lua, after args.lua where it is joined too.

local function weighted(q, window, elapsed)
  if q == 0 then
    return 0
  end
  return math.floor(q * (window - elapsed) / window)
end

-- window_at is a sliding window's hash (HMGET's b, c, p and w) at now (µs), by
-- window: {b = the bucket of now, c = its count, p = the bucket before's,
-- moved = true when it was kept by another window}. A hash a reload left
-- under another window w (its buckets counted in w's units) starts the
-- bucket of now with all it counts at now, by w: nothing counted is lost,
-- and it slides out as the new window does. A hash written before w was
-- kept whose bucket lies past the next one (a wider window) is taken
-- whole.
local function window_at(h, window, now)
  local b, c, p, was = tonumber(h[1]) or 0, tonumber(h[2]) or 0, tonumber(h[3]) or 0, tonumber(h[4])
  local bucket = math.floor(now / window)
  if (was and was ~= window) or (not was and b > bucket + 1) then
    local used = c + p
    if was then
      local ob = math.floor(now / was)
      if b == ob - 1 then
        p, c = c, 0
      elseif b < ob - 1 then
        p, c = 0, 0
      end
      used = c + weighted(p, was, math.max(now - math.max(b, ob) * was, 0))
    end
    return {b = bucket, c = used, p = 0, moved = true}
  end
  if b == bucket - 1 then
    p, c = c, 0
  elseif b < bucket - 1 then
    p, c = 0, 0
  end
  return {b = math.max(b, bucket), c = c, p = p, moved = false}
end
