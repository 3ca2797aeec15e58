-- Sliding window log: per rate, a list of the admission times (struct '<dd':
-- seconds, nanoseconds) of the hits still needed, newest first, at most `limit`
-- long. A hit at t counts while now < t + period.
local function time_at(key, index)
  local v = redis.call('LINDEX', key, index)
  if not v or #v ~= 16 then return -math.huge end
  return rel(struct.unpack('<dd', v))
end

return run({
  load = function(key, limit, period)
    local len = redis.call('LLEN', key)
    local s = {len = len, used = 0}
    if len == 0 then return s end
    s.newest = time_at(key, 0)
    local function live(index)
      return NOW - time_at(key, index) < period
    end
    if NOW - s.newest >= period then
      return s
    end
    if len == 1 or live(len - 1) then
      s.used = len
    else
      -- Entries are newest first: find the last live one by bisection.
      local lo, hi = 0, len - 1
      while hi - lo > 1 do
        local mid = math.floor((lo + hi) / 2)
        if live(mid) then lo = mid else hi = mid end
      end
      s.used = lo + 1
    end
    return s
  end,
  fits = function(s, cost)
    return s.used + cost <= s.limit
  end,
  take = function(s, cost)
    -- Never behind the newest entry, so the list stays sorted if the server's
    -- clock steps back.
    local t = NOW
    if s.newest and s.newest > t then t = s.newest end
    local stamp, batch = struct.pack('<dd', abs(t)), {}
    for i = 1, math.min(cost, 1000) do batch[i] = stamp end
    local left = cost
    while left > 0 do
      local n = math.min(left, 1000)
      redis.call('LPUSH', s.key, unpack(batch, 1, n))
      left = left - n
    end
    if s.len + cost > s.limit then
      redis.call('LTRIM', s.key, 0, s.limit - 1)
    end
    redis.call('PEXPIRE', s.key, ttl_ms(t + s.period - NOW))
    s.used, s.newest = s.used + cost, t
  end,
  remaining = function(s)
    return s.limit - s.used
  end,
  reset_after = function(s)
    if s.used > 0 then return s.newest + s.period - NOW end
    return 0
  end,
  retry_after = function(s, cost)
    -- The (used + cost - limit)-th oldest live entry must expire first; newest
    -- first, it sits at index limit - cost.
    return time_at(s.key, s.limit - cost) + s.period - NOW
  end,
})
