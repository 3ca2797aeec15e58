-- shardlimit: exact products of counts and periods, for the sliding window counter.
-- The products reach 2^84, beyond the doubles' 2^53: each is split into a rounded
-- value and its exact error (Dekker's two-product), which compare exactly.

local TWO52 = 4503599627370496

-- a * b as hi + lo exactly (Dekker), for integers below 2^53.
local function two_prod(a, b)
  local p = a * b
  local t = 134217729 * a
  local ah = t - (t - a)
  local al = a - ah
  t = 134217729 * b
  local bh = t - (t - b)
  local bl = b - bh
  return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl
end

-- The sign of a * b - c * d, exactly.
local function cmp_prod(a, b, c, d)
  local p1, e1 = two_prod(a, b)
  local p2, e2 = two_prod(c, d)
  local hi, lo = p1 - p2, e2 - e1
  if hi > lo then return 1 elseif hi < lo then return -1 end
  return 0
end

-- floor(a * b / d), exact while the result is below 2^52.
local function floor_prod_div(a, b, d)
  local q = math.floor(a * b / d)
  if q >= TWO52 then return q end
  for _ = 1, 4 do
    if q > 0 and cmp_prod(q, d, a, b) > 0 then
      q = q - 1
    elseif cmp_prod(q + 1, d, a, b) <= 0 then
      q = q + 1
    else
      break
    end
  end
  return q
end

-- ceil(a * b / d), exact while the result is below 2^52.
local function ceil_prod_div(a, b, d)
  local q = floor_prod_div(a, b, d)
  if q < TWO52 and cmp_prod(q, d, a, b) < 0 then
    q = q + 1
  end
  return q
end
