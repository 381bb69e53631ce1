"""The Redis side of the limiter: one Lua script per operation, each atomic on the server.

The scripts mirror ``gcra`` and ``core`` exactly (same slot placement, same adaptation), with
time from ``redis.call('TIME')`` so that the clocks of the processes sharing a quota never
matter. All keys of one model's quota share a ``{hash tag}``, so every script touches one hash
slot and runs on Redis Cluster too:

``{prefix:model}:state``    hash: ``tat:<dimension>``, ``last_start``, ``factor``, ``hold``,
                            ``shift``, ``epoch``, ``ok`` (successes since the last change)
``{prefix:model}:leases``   sorted set: concurrency leases, scored by their expiry time
``{prefix:model}:members``  sorted set: processes seen lately, scored by last booking time

Numbers cross the Lua boundary as ``%.17g`` text: Redis would truncate a returned Lua number to
an integer, and 17 digits round-trip a double exactly.
"""

from __future__ import annotations

# Shared helpers, prepended to every script.
_PRELUDE = """
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function fmt(x) return string.format('%.17g', x) end
-- Give a key written outside a booking an expiry, unless a booking already set a longer one.
local function expire_later(key)
  if redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, 172800000) end
end
"""

# KEYS: state, leases, members
# ARGV: lease, max_concurrency, lease_ttl, member, margin, ndims,
#       then per dimension: name, quota, window, slack, burst, cost
# -> {'busy', now, earliest lease expiry}
#  | {'ok', now, start, shift, factor, epoch, members, then per dimension: slot start, end, rate}
BOOK = (
    _PRELUDE
    + """
local t = now()
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', t)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {'busy', fmt(t), first[2]}
end
local ttl = tonumber(ARGV[3])
redis.call('ZADD', KEYS[2], t + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[2], math.ceil(ttl * 2000))
redis.call('ZADD', KEYS[3], t, ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', t - 120)
redis.call('PEXPIRE', KEYS[3], 300000)
local members = redis.call('ZCARD', KEYS[3])

local st = redis.call('HMGET', KEYS[1], 'factor', 'hold', 'shift', 'epoch')
local factor = tonumber(st[1]) or 1
local hold = tonumber(st[2]) or 0
local shift = tonumber(st[3]) or 0
local epoch = tonumber(st[4]) or 0
local eff = t
if hold > eff then eff = hold end
local margin = tonumber(ARGV[5])
local n = tonumber(ARGV[6])

local names, tats, lens, rates = {}, {}, {}, {}
local start = eff
local longest = 0
for i = 1, n do
  local b = 6 + (i - 1) * 6
  local name = ARGV[b + 1]
  local quota, window = tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local slack, burst, cost = tonumber(ARGV[b + 4]), tonumber(ARGV[b + 5]), tonumber(ARGV[b + 6])
  local rate = factor * (quota + 1 - slack - 1e-6) / (window + margin + burst)
  local len = cost
  if cost > slack then len = 2 * cost - slack end
  len = len / rate
  local tat = tonumber(redis.call('HGET', KEYS[1], 'tat:' .. name)) or -1e300
  local half = 0.5 * len
  local ss = tat
  if eff - half > ss then ss = eff - half end
  local candidate = ss + half - burst
  if candidate > start then start = candidate end
  names[i], tats[i], lens[i], rates[i] = name, tat, len, rate
  if window + burst > longest then longest = window + burst end
end

redis.call('HSET', KEYS[1], 'last_start', fmt(start))
local out = {'ok', fmt(t), fmt(start), fmt(shift), fmt(factor), tostring(epoch), members}
local last = t
for i = 1, n do
  local ss = tats[i]
  if start - 0.5 * lens[i] > ss then ss = start - 0.5 * lens[i] end
  local e = ss + lens[i]
  redis.call('HSET', KEYS[1], 'tat:' .. names[i], fmt(e))
  if e > last then last = e end
  out[#out + 1] = fmt(ss)
  out[#out + 1] = fmt(e)
  out[#out + 1] = fmt(rates[i])
end
redis.call('PEXPIRE', KEYS[1], math.ceil((last - t + 2 * longest) * 1000))
return out
"""
)

# KEYS: state
# -> current shift
SHIFT = """
return redis.call('HGET', KEYS[1], 'shift') or '0'
"""

# KEYS: state, leases
# ARGV: lease, shift at booking, ndims, then per dimension: name, slot start, slot end
REFUND = (
    _PRELUDE
    + """
redis.call('ZREM', KEYS[2], ARGV[1])
local delta = (tonumber(redis.call('HGET', KEYS[1], 'shift')) or 0) - tonumber(ARGV[2])
local n = tonumber(ARGV[3])
for i = 1, n do
  local b = 3 + (i - 1) * 3
  local field = 'tat:' .. ARGV[b + 1]
  local tat = tonumber(redis.call('HGET', KEYS[1], field))
  if tat and math.abs(tat - (tonumber(ARGV[b + 3]) + delta)) <= 1e-6 then
    redis.call('HSET', KEYS[1], field, fmt(tonumber(ARGV[b + 2]) + delta))
  end
end
return 1
"""
)

# KEYS: state
# ARGV: dimension name, slot end, start, old slot length, new slot length
RECONCILE = (
    _PRELUDE
    + """
local field = 'tat:' .. ARGV[1]
local tat = tonumber(redis.call('HGET', KEYS[1], field))
if not tat then return 0 end
local e, s = tonumber(ARGV[2]), tonumber(ARGV[3])
local old, new = tonumber(ARGV[4]), tonumber(ARGV[5])
if new > old then
  if e > tat then tat = e end
  tat = tat + (new - old)
elseif new < old then
  local floor = tonumber(redis.call('HGET', KEYS[1], 'last_start')) or s
  if math.abs(tat - e) <= 1e-6 then floor = s + 0.5 * new end
  tat = tat - (old - new)
  if floor > tat then tat = floor end
else
  return 0
end
redis.call('HSET', KEYS[1], field, fmt(tat))
return 1
"""
)

# KEYS: state, leases
# ARGV: lease, success (0/1), epoch at booking, rpm, recover_after, recovery_step
# -> {factor, recovered (0/1)}
RELEASE = (
    _PRELUDE
    + """
redis.call('ZREM', KEYS[2], ARGV[1])
local st = redis.call('HMGET', KEYS[1], 'factor', 'epoch', 'ok')
local factor = tonumber(st[1]) or 1
if ARGV[2] ~= '1' or factor >= 1 or (tonumber(st[2]) or 0) ~= tonumber(ARGV[3]) then
  return {fmt(factor), 0}
end
local ok = (tonumber(st[3]) or 0) + 1
local need = math.max(tonumber(ARGV[5]), math.ceil(factor * tonumber(ARGV[4])))
if ok >= need then
  factor = math.min(1, factor + tonumber(ARGV[6]))
  redis.call('HSET', KEYS[1], 'factor', fmt(factor), 'ok', 0)
  expire_later(KEYS[1])
  return {fmt(factor), 1}
end
redis.call('HSET', KEYS[1], 'ok', ok)
expire_later(KEYS[1])
return {fmt(factor), 0}
"""
)

# KEYS: state
# ARGV: retry delay, backoff, min factor, ndims, then the dimension names
# -> {factor, decreased (0/1)}
REPORT = (
    _PRELUDE
    + """
local t = now()
local st = redis.call('HMGET', KEYS[1], 'factor', 'hold', 'shift', 'epoch')
local factor = tonumber(st[1]) or 1
local hold = tonumber(st[2]) or 0
local shift = tonumber(st[3]) or 0
local epoch = tonumber(st[4]) or 0
local decreased = 0
if hold <= t then
  factor = math.max(tonumber(ARGV[3]), factor * tonumber(ARGV[2]))
  epoch = epoch + 1
  decreased = 1
  redis.call('HSET', KEYS[1], 'ok', 0)
end
local new_hold = t + tonumber(ARGV[1])
local base = hold
if t > base then base = t end
local extra = new_hold - base
if extra > 0 then
  local n = tonumber(ARGV[4])
  for i = 0, n do
    local field = 'last_start'
    if i > 0 then field = 'tat:' .. ARGV[4 + i] end
    local value = tonumber(redis.call('HGET', KEYS[1], field))
    if value and value > t then redis.call('HSET', KEYS[1], field, fmt(value + extra)) end
  end
  shift = shift + extra
  hold = new_hold
end
redis.call('HSET', KEYS[1], 'factor', fmt(factor), 'hold', fmt(hold), 'shift', fmt(shift),
           'epoch', epoch)
expire_later(KEYS[1])
return {fmt(factor), decreased}
"""
)


def keys(prefix: str, model: str) -> tuple[str, str, str]:
    """The state, leases and members keys of ``model``'s quota, all in one hash slot."""
    tag = "{" + f"{prefix}:{model}" + "}"
    return f"{tag}:state", f"{tag}:leases", f"{tag}:members"
