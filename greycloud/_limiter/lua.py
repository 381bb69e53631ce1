"""The Redis side of the limiter: one Lua script per operation, each atomic on the server.

The scripts mirror ``gcra`` and ``core`` exactly (same slot placement, same adaptation), with
time from ``redis.call('TIME')`` so that the clocks of the processes sharing a quota never
matter. All keys of one model's quota share a ``{hash tag}``, so every quota script touches one
hash slot and runs on Redis Cluster too (``QuotaKeys``, always passed in that order):

``{prefix:model}:state``    hash: ``tat:<dimension>``, ``last_start``, ``factor``, ``hold``,
                            ``shift``, ``epoch``, ``ok`` (successes since the last change),
                            ``seq`` (the last ticket number handed out). New shared state of a
                            quota (e.g. a discovered rate) goes here as more fields.
``{prefix:model}:leases``   sorted set: concurrency leases by booking id, scored by expiry
``{prefix:model}:queue``    sorted set: booking ids waiting for a slot, scored by ticket number
``{prefix:model}:waiters``  sorted set: the same ids, scored by expiry (renewed while waiting)
(``auto``, ``auto_v``, ``auto_s:<second>``, ``auto_k:<second>``: a discovered rate, see
                            ``DISCOVERY``)
``{prefix:model}:gone``     sorted set: ids given up by their caller, scored by expiry, so that
                            a script that runs late for one of them takes nothing

Booking ids are made by the client before it sends a booking, so whatever happens to the reply,
the client can name what it gave up (``ABANDON``). A lease and a ticket live ``lease_ttl``
seconds unless their process renews them (``RENEW``): leases of dead processes expire. A slot
freed while someone waits is announced on a channel named after the queue key; waiters are
served in ticket order. The processes sharing a Redis register under ``{prefix}:members``
(``REGISTER``, its own key and slot), which gives a local fallback its share of the quota.

Numbers cross the Lua boundary as ``%.17g`` text: Redis would truncate a returned Lua number to
an integer, and 17 digits round-trip a double exactly.
"""

from __future__ import annotations

from typing import NamedTuple

# Shared helpers, prepended to every script.
_PRELUDE = """
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function fmt(x) return string.format('%.17g', x) end
-- Make a key live at least ``ms`` milliseconds more (never shortens a longer expiry).
local function keep(key, ms)
  local left = redis.call('PTTL', key)
  if left >= 0 and left < ms then redis.call('PEXPIRE', key, ms) end
  if left == -1 then redis.call('PEXPIRE', key, ms) end
end
-- Give a key written outside a booking an expiry, unless a booking already set a longer one.
local function expire_later(key)
  if redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, 172800000) end
end
"""

# The quota scripts' KEYS are state, leases, queue, waiters, gone (``QuotaKeys``).
_QUOTA_PRELUDE = (
    _PRELUDE
    + """
-- Drop expired leases, tickets and tombstones: what dead processes held comes back here.
local function sweep(t)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', t)
  local dead = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', t)
  for i = 1, #dead do redis.call('ZREM', KEYS[3], dead[i]) end
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', t)
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', t)
end
-- A slot came free or the queue moved: wake the waiters (one message per change).
local function announce()
  if redis.call('ZCARD', KEYS[3]) > 0 then redis.call('PUBLISH', KEYS[3], '1') end
end
"""
)

# ARGV: booking id, max_concurrency, lease_ttl, margin, not_before (seconds from now),
#       deadline (server time after which the sender has surely given up; 0: none), ndims,
#       then per dimension: name, quota, window, slack, burst, cost
# -> {'late', now}                    run after its deadline: the sender gave up, nothing taken
#  | {'gone'}                         the id was given up: nothing taken
#  | {'queued', ticket, ahead, free}  waiting for a slot (ahead: tickets before this one)
#  | {'ok', now, start, shift, factor, epoch, then per dimension: slot start, end, rate}
# Idempotent per id: a repeated script replaces the id's own lease, never adds a second one.
BOOK = (
    _QUOTA_PRELUDE
    + """
local t = now()
local id, ttl = ARGV[1], tonumber(ARGV[3])
sweep(t)
local deadline = tonumber(ARGV[6])
if deadline > 0 and t > deadline then return {'late', fmt(t)} end
if redis.call('ZSCORE', KEYS[5], id) then return {'gone'} end
redis.call('ZREM', KEYS[2], id)
local ticket = redis.call('ZSCORE', KEYS[3], id)
if not ticket then
  ticket = redis.call('HINCRBY', KEYS[1], 'seq', 1)
  redis.call('ZADD', KEYS[3], ticket, id)
end
redis.call('ZADD', KEYS[4], t + ttl, id)
local free = tonumber(ARGV[2]) - redis.call('ZCARD', KEYS[2])
local ahead = redis.call('ZRANK', KEYS[3], id)
if ahead >= free then
  local ms = math.ceil(ttl * 2000)
  keep(KEYS[1], ms)
  keep(KEYS[3], ms)
  keep(KEYS[4], ms)
  return {'queued', tostring(ticket), ahead, free}
end
redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', KEYS[4], id)
redis.call('ZADD', KEYS[2], t + ttl, id)
redis.call('PEXPIRE', KEYS[2], math.ceil(ttl * 2000))
if ahead > 0 or free > 1 then announce() end

local st = redis.call('HMGET', KEYS[1], 'factor', 'hold', 'shift', 'epoch')
local factor = tonumber(st[1]) or 1
local hold = tonumber(st[2]) or 0
local shift = tonumber(st[3]) or 0
local epoch = tonumber(st[4]) or 0
local eff = t + tonumber(ARGV[5])
if hold > eff then eff = hold end
local margin = tonumber(ARGV[4])
local n = tonumber(ARGV[7])

local names, tats, lens, rates = {}, {}, {}, {}
local start = eff
local longest = ttl
for i = 1, n do
  local b = 7 + (i - 1) * 6
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
local out = {'ok', fmt(t), fmt(start), fmt(shift), fmt(factor), tostring(epoch)}
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

# ARGV: booking id, shift at booking, ndims, then per dimension: name, slot start, slot end
# A booking that never started: its lease and, when it is still the last one, its slots.
REFUND = (
    _QUOTA_PRELUDE
    + """
redis.call('ZREM', KEYS[2], ARGV[1])
announce()
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

# ARGV: seconds a tombstone lasts, then the booking ids given up
# Whatever each id holds (a lease, a ticket) is freed, and a script for it that runs later
# (still in a socket buffer, say, while Redis was frozen) finds a tombstone and takes nothing.
ABANDON = (
    _QUOTA_PRELUDE
    + """
local t = now()
local until_ = t + tonumber(ARGV[1])
for i = 2, #ARGV do
  local id = ARGV[i]
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZREM', KEYS[4], id)
  redis.call('ZADD', KEYS[5], until_, id)
end
keep(KEYS[5], math.ceil(tonumber(ARGV[1]) * 1000))
announce()
return 1
"""
)

# ARGV: lease_ttl, then booking ids this process still holds or waits with
# -> how many leases and tickets were renewed (an expired one is not brought back: its slot may
#    be someone else's by now)
RENEW = (
    _QUOTA_PRELUDE
    + """
local t = now()
sweep(t)
local ttl = tonumber(ARGV[1])
local renewed = 0
for i = 2, #ARGV do
  renewed = renewed + redis.call('ZADD', KEYS[2], 'XX', 'CH', t + ttl, ARGV[i])
  renewed = renewed + redis.call('ZADD', KEYS[4], 'XX', 'CH', t + ttl, ARGV[i])
end
local ms = math.ceil(ttl * 2000)
keep(KEYS[2], ms)
keep(KEYS[4], ms)
keep(KEYS[3], ms)
announce()
return renewed
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

# ARGV: booking id, success (0/1), epoch at booking, rpm, recover_after, recovery_step
# -> {factor, recovered (0/1)}
RELEASE = (
    _QUOTA_PRELUDE
    + """
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then announce() end
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

# ARGV: retry delay, backoff, min factor, ndims, then the dimension names
# -> {factor, decreased (0/1)}
REPORT = (
    _QUOTA_PRELUDE
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

# KEYS: members
# ARGV: process id, seconds its registration lasts (0: leave now)
# -> {how many processes are registered now, now}
REGISTER = (
    _PRELUDE
    + """
local t = now()
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t)
if ttl > 0 then
  redis.call('ZADD', KEYS[1], t + ttl, ARGV[1])
  keep(KEYS[1], math.ceil(ttl * 2000))
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return {redis.call('ZCARD', KEYS[1]), fmt(t)}
"""
)


class QuotaKeys(NamedTuple):
    """The keys of one model's quota, all in one hash slot, in the order every script takes."""

    state: str
    leases: str
    queue: str
    waiters: str
    gone: str


def keys(prefix: str, model: str) -> QuotaKeys:
    """The keys of ``model``'s quota; ``queue`` is also the channel its freed slots go out on."""
    tag = "{" + f"{prefix}:{model}" + "}"
    return QuotaKeys(*(f"{tag}:{name}" for name in QuotaKeys._fields))


def members_key(prefix: str) -> str:
    """The sorted set of the processes sharing ``prefix`` (its own slot, one script uses it)."""
    return "{" + prefix + "}:members"


# rpm="auto" shared by every process (``greycloud._async.discovery_shared``).
# KEYS: state
# ARGV: starts, successes (this process's since it last said), expected version ('': only
#       read), new state (JSON), old rate / new rate, seconds to hold new starts (a 429's
#       retry delay; 0: none)
# -> {now, version, state JSON or '', written (0/1), hold (server time), then starts and
#     successes of each of the last SECONDS whole seconds, oldest first}
# The law itself runs in the processes; Redis keeps its one state, the counts it is measured
# by, and writes a new state only over the version it was computed from (compare and set).
# Writing a new rate rescales the requests schedule still ahead (starts booked for the old
# rate), pivoting on now, so that what is booked ahead keeps to the new rate; the last start
# and the tokens schedule move by as much as the last booking does.
DISCOVERY = (
    _PRELUDE
    + """
local t = now()
local sec = math.floor(t)
local starts, oks = tonumber(ARGV[1]), tonumber(ARGV[2])
if starts > 0 then redis.call('HINCRBY', KEYS[1], 'auto_s:' .. sec, starts) end
if oks > 0 then redis.call('HINCRBY', KEYS[1], 'auto_k:' .. sec, oks) end
for s = sec - 12, sec - 5 do redis.call('HDEL', KEYS[1], 'auto_s:' .. s, 'auto_k:' .. s) end
local hold = tonumber(redis.call('HGET', KEYS[1], 'hold')) or 0
if tonumber(ARGV[6]) > 0 and t + tonumber(ARGV[6]) > hold then
  hold = t + tonumber(ARGV[6])
  redis.call('HSET', KEYS[1], 'hold', fmt(hold))  -- BOOK starts nothing before it
end
local version = tonumber(redis.call('HGET', KEYS[1], 'auto_v')) or 0
local written = 0
if ARGV[3] ~= '' and tonumber(ARGV[3]) == version then
  version = version + 1
  redis.call('HSET', KEYS[1], 'auto', ARGV[4], 'auto_v', version)
  local ratio = tonumber(ARGV[5])
  local tat = tonumber(redis.call('HGET', KEYS[1], 'tat:requests'))
  if ratio ~= 1 and tat and tat > t then
    redis.call('HSET', KEYS[1], 'tat:requests', fmt(t + (tat - t) * ratio))
  end
  -- The last start booked moves as its booking does (``adjust``), and the tokens schedule with
  -- it: BOOK starts nothing before the tokens TAT, so one left where the old rate put it would
  -- hold every new start there (a schedule booked a minute ahead at the start rate stalls).
  local last = tonumber(redis.call('HGET', KEYS[1], 'last_start'))
  if ratio ~= 1 and last and last > t then
    local moved = t + (last - t) * ratio
    redis.call('HSET', KEYS[1], 'last_start', fmt(moved))
    local tokens = tonumber(redis.call('HGET', KEYS[1], 'tat:tokens'))
    if tokens and tokens > t then
      local shifted = tokens + moved - last
      if shifted < t then shifted = t end
      redis.call('HSET', KEYS[1], 'tat:tokens', fmt(shifted))
    end
  end
  written = 1
end
expire_later(KEYS[1])
local out = {fmt(t), version, redis.call('HGET', KEYS[1], 'auto') or '', written, fmt(hold)}
for s = sec - 3, sec do
  out[#out + 1] = redis.call('HGET', KEYS[1], 'auto_s:' .. s) or '0'
  out[#out + 1] = redis.call('HGET', KEYS[1], 'auto_k:' .. s) or '0'
end
return out
"""
)
