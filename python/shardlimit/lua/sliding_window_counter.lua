-- Sliding window counter: per rate, struct '<dddd' (current window start: seconds,
-- nanoseconds; prev; cur). At elapsed time e into the current window the estimate
-- is prev * (period - e) / period + cur, compared in exact integers:
-- prev * (period - e) + (cur + cost) * period <= limit * period.
-- The key expires at the end of the window after the current one.
return run({
  load = function(key, limit, period)
    local e = into_window(period)
    local s = {start = NOW - e, elapsed = e, prev = 0, cur = 0, same = false}
    local v = redis.call('GET', key)
    if v and #v == 32 then
      local start_s, start_n, prev, cur = struct.unpack('<dddd', v)
      local w = rel(start_s, start_n)
      if w >= s.start then
        -- The same window; or a later one, if the server's clock stepped back.
        s.start, s.prev, s.cur, s.same = w, prev, cur, true
        s.elapsed = math.max(NOW - w, 0)
      elseif w == s.start - period then
        s.prev = cur
      end
    end
    return s
  end,
  fits = function(s, cost)
    local room = s.limit - s.cur - cost
    return room >= 0 and cmp_prod(s.prev, s.period - s.elapsed, room, s.period) <= 0
  end,
  take = function(s, cost)
    s.cur = s.cur + cost
    local start_s, start_n = abs(s.start)
    local value = struct.pack('<dddd', start_s, start_n, s.prev, s.cur)
    if s.same then
      redis.call('SET', s.key, value, 'KEEPTTL')
    else
      redis.call('SET', s.key, value, 'PX', ttl_ms(2 * s.period - s.elapsed))
    end
  end,
  remaining = function(s)
    -- floor((limit * P - prev * (P - e) - cur * P) / P), at least 0.
    local weighted = ceil_prod_div(s.prev, s.period - s.elapsed, s.period)
    return math.max(s.limit - s.cur - weighted, 0)
  end,
  reset_after = function(s)
    if s.cur > 0 then return 2 * s.period - s.elapsed end
    if s.prev > 0 then return s.period - s.elapsed end
    return 0
  end,
  retry_after = function(s, cost)
    local p, e = s.period, s.elapsed
    -- Later in this window, as the previous window's weight decays:
    -- prev * (P - e') <= (limit - cur - cost) * P.
    local room = s.limit - s.cur - cost
    if room >= 0 and s.prev > 0 then
      local x = floor_prod_div(room, p, s.prev)
      if x >= 1 then
        local e_min = p - math.min(x, p)
        return e_min - math.min(e, e_min)
      end
    end
    -- In the next window the current count becomes the previous one.
    local to_next = p - e
    if s.cur == 0 then return to_next end
    local x = p
    if s.limit - cost < s.cur then x = floor_prod_div(s.limit - cost, p, s.cur) end
    return to_next + p - math.min(x, p)
  end,
})
