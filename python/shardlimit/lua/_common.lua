-- shardlimit: what the four algorithm scripts share. RedisStorage sends this file,
-- the helpers an algorithm needs (_window.lua, _exact.lua) and the algorithm's file
-- as a single script, so a decision is one EVALSHA. (Every function definition runs
-- on every call, so each script carries only the helpers it uses.)
--
-- KEYS[i]   the state key of rate i (every key in one hash slot)
-- ARGV[1]   struct '<ddd': now (whole seconds, nanoseconds; seconds < 0: read the
--           server's TIME) and the cost (0: peek, i.e. decide for a cost-1 hit and
--           write nothing)
-- ARGV[2]   struct '<d' then '<dd' per rate: milliseconds added to every expiry
--           (0 unless the caller injects a clock), then each rate's limit and
--           period in nanoseconds
--
-- Returns struct '<ddddd': allowed (1/0), deciding rate (1-based), remaining,
-- reset_after ns, retry_after ns (-1: never); one bulk string is cheaper for the
-- client to parse than an array of five integers. The rules are the memory store's:
-- a hit passes only
-- if every rate allows it and then consumes from all of them; when denied, the
-- deciding rate is the violated one with the longest wait, when allowed the one with
-- the least remaining (the first on ties).
--
-- Lua numbers are doubles, exact for integers up to 2^53. Times are therefore kept
-- relative to the whole second of `now` (exact within 104 days of it), stored as
-- (seconds, nanoseconds) pairs, and products of counts and periods (up to 2^84) are
-- compared exactly with a two-product. Periods up to 2^52 ns (52 days) are exact.
-- Values and arguments are packed doubles (the struct library): converting numbers
-- to and from decimal text costs more than the rest of a decision.

local E9 = 1000000000

-- floor(a / b) for integers a, b below 2^53 (b > 0), corrected for rounding.
local function idiv(a, b)
  local q = math.floor(a / b)
  local r = a - q * b
  if r < 0 then
    q = q - 1
  elseif r >= b then
    q = q + 1
  end
  return q
end

local NOW_S, NOW_N, COST = struct.unpack('<ddd', ARGV[1])
if NOW_S < 0 then
  local t = redis.call('TIME')
  NOW_S, NOW_N = tonumber(t[1]), tonumber(t[2]) * 1000
end
local MARGIN_MS = struct.unpack('<d', ARGV[2])
-- Every time below is in nanoseconds relative to the second NOW_S started.
local NOW = NOW_N

-- A stored (seconds, nanoseconds) time relative to NOW_S.
local function rel(s, n)
  return (s - NOW_S) * E9 + n
end

-- A relative time back to (seconds, nanoseconds).
local function abs(t)
  local q = idiv(t, E9)
  return NOW_S + q, t - q * E9
end

-- Expiry in milliseconds for state that matters `ns` more nanoseconds.
local function ttl_ms(ns)
  return math.max(math.ceil(ns / 1000000), 1) + MARGIN_MS
end

-- Runs one decision with an algorithm's functions:
--   load(key, limit, period) -> state    fits(state, cost) -> bool
--   take(state, cost)   consume and write    remaining(state), reset_after(state)
--   retry_after(state, cost) (only when the cost fits the limit)
local function run(alg)
  local cost, peek = COST, COST == 0
  if peek then cost = 1 end
  local states, fits = {}, true
  for i = 1, #KEYS do
    local limit, period = struct.unpack('<dd', ARGV[2], 9 + 16 * (i - 1))
    local s = alg.load(KEYS[i], limit, period)
    s.key, s.limit, s.period = KEYS[i], limit, period
    s.fits = cost <= limit and alg.fits(s, cost)
    fits = fits and s.fits
    states[i] = s
  end

  if fits then
    if not peek then
      for i = 1, #states do alg.take(states[i], cost) end
    end
    local best, least
    for i = 1, #states do
      local r = alg.remaining(states[i])
      if best == nil or r < least then best, least = i, r end
    end
    return struct.pack('<ddddd', 1, best, least, alg.reset_after(states[best]), 0)
  end

  local worst, wait
  for i = 1, #states do
    local s = states[i]
    if not s.fits then
      local w = math.huge
      if cost <= s.limit then w = alg.retry_after(s, cost) end
      if worst == nil or w > wait then worst, wait = i, w end
    end
  end
  local s = states[worst]
  if wait == math.huge then wait = -1 end
  return struct.pack('<ddddd', 0, worst, alg.remaining(s), alg.reset_after(s), wait)
end
