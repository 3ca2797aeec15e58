-- Fixed window: per rate, struct '<ddd' (window start: seconds, nanoseconds; count).
-- The count resets when now enters another window; windows are aligned to
-- multiples of the period. The key expires when its window ends.
return run({
  load = function(key, limit, period)
    local s = {start = NOW - into_window(period), count = 0, same = false}
    local v = redis.call('GET', key)
    if v and #v == 24 then
      local start_s, start_n, count = struct.unpack('<ddd', v)
      local start = rel(start_s, start_n)
      -- The same window; or a later one, if the server's clock stepped back.
      if start >= s.start then
        s.start, s.count, s.same = start, count, true
      end
    end
    return s
  end,
  fits = function(s, cost)
    return s.count + cost <= s.limit
  end,
  take = function(s, cost)
    s.count = s.count + cost
    local start_s, start_n = abs(s.start)
    local value = struct.pack('<ddd', start_s, start_n, s.count)
    if s.same then
      redis.call('SET', s.key, value, 'KEEPTTL')
    else
      redis.call('SET', s.key, value, 'PX', ttl_ms(s.start + s.period - NOW))
    end
  end,
  remaining = function(s)
    return s.limit - s.count
  end,
  reset_after = function(s)
    if s.count > 0 then return s.start + s.period - NOW end
    return 0
  end,
  retry_after = function(s, cost)
    return s.start + s.period - NOW
  end,
})
