-- Token bucket (GCRA): per rate, struct '<dd', the theoretical arrival time (TAT:
-- seconds, nanoseconds). interval = ceil(period / limit), tolerance = limit *
-- interval; a hit of cost c moves the TAT to max(tat, now) + c * interval and fits
-- if that is at most `tolerance` ahead of now. The key expires at the TAT.
return run({
  load = function(key, limit, period)
    local interval = -idiv(-period, limit)
    local s = {interval = interval, tolerance = interval * limit, debt = 0}
    local v = redis.call('GET', key)
    if v and #v == 16 then
      local tat = rel(struct.unpack('<dd', v))
      if tat > NOW then s.debt = tat - NOW end
    end
    return s
  end,
  fits = function(s, cost)
    return s.debt + cost * s.interval <= s.tolerance
  end,
  take = function(s, cost)
    s.debt = s.debt + cost * s.interval
    local value = struct.pack('<dd', abs(NOW + s.debt))
    redis.call('SET', s.key, value, 'PX', ttl_ms(s.debt))
  end,
  remaining = function(s)
    return idiv(math.max(s.tolerance - s.debt, 0), s.interval)
  end,
  reset_after = function(s)
    return s.debt
  end,
  retry_after = function(s, cost)
    return s.debt + cost * s.interval - s.tolerance
  end,
})
