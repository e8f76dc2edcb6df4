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
-- moved = true when it was kept by another window, unkept = true when its
-- w is not window: a write must set it}. A hash a reload left under
-- another window w (its buckets counted in w's units) takes all it counts
-- at now, by w, into the bucket of window that holds the start of w's
-- bucket of now: nothing counted is lost, it slides out by the new window,
-- and a count converted back and forth (gateways between two configs) is
-- never dated later than its bucket began. A hash written before w was kept
-- whose bucket lies past the next one (a wider window) is taken whole,
-- into the bucket of now.
local function window_at(h, window, now)
  local b, c, p, was = tonumber(h[1]) or 0, tonumber(h[2]) or 0, tonumber(h[3]) or 0, tonumber(h[4])
  local bucket = math.floor(now / window)
  if (was and was ~= window) or (not was and b > bucket + 1) then
    local used, at = c + p, bucket
    if was then
      local ob = math.floor(now / was)
      if b == ob - 1 then
        p, c = c, 0
      elseif b < ob - 1 then
        p, c = 0, 0
      end
      b = math.max(b, ob)
      used = c + weighted(p, was, math.max(now - b * was, 0))
      at = math.min(math.floor(b * was / window), bucket)
    end
    if at == bucket then
      return {b = bucket, c = used, p = 0, moved = true, unkept = true}
    elseif at == bucket - 1 then
      return {b = bucket, c = 0, p = used, moved = true, unkept = true}
    end
    return {b = bucket, c = 0, p = 0, moved = true, unkept = true}
  end
  if b == bucket - 1 then
    p, c = c, 0
  elseif b < bucket - 1 then
    p, c = 0, 0
  end
  return {b = math.max(b, bucket), c = c, p = p, moved = false, unkept = was ~= window}
end
