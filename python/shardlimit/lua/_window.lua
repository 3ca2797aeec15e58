-- shardlimit: window alignment, for the fixed window and the sliding window counter.
-- Windows are aligned to multiples of the period on the clock's timeline.

-- (a * b) mod m for a < m <= 2^52 and b < 2^30, by doubling (no product above 2^53).
local function mulmod(a, b, m)
  local r, bit = 0, 536870912
  while bit >= 1 do
    r = r * 2
    if r >= m then r = r - m end
    if b >= bit then
      b = b - bit
      r = r + a
      if r >= m then r = r - m end
    end
    bit = bit / 2
  end
  return r
end

-- now mod period: how far now is into its window (windows are aligned to multiples
-- of the period on the clock's timeline).
local function into_window(period)
  if period % E9 == 0 then
    return (NOW_S % (period / E9)) * E9 + NOW_N
  end
  if E9 % period == 0 then
    return NOW_N % period
  end
  return (mulmod(NOW_S % period, E9, period) + NOW_N) % period
end
