-- Shared by every postroom script (prepended to each one when it is loaded).
-- KEYS[1] is the queue's hash tag {prefix:queue}; every key of the queue is that tag
-- plus a suffix, so each script touches one Redis Cluster slot only (the slot of
-- KEYS[1]). Passing one key instead of fourteen keeps each call small.
local TAG = KEYS[1]
local K_POLICY, K_QUEUED, K_LEASED = TAG .. ':policy', TAG .. ':queued', TAG .. ':leased'
local K_LEASE, K_ATT, K_MSG, K_HIST = TAG .. ':lease', TAG .. ':att', TAG .. ':msg', TAG .. ':hist'
local K_LIVE, K_DEAD, K_DINFO = TAG .. ':live', TAG .. ':dead', TAG .. ':dinfo'
local K_COUNTERS, K_NOTIFY = TAG .. ':counters', TAG .. ':notify'
local K_DEDUP, K_DEDUPX = TAG .. ':dedup', TAG .. ':dedupx'
local K_PQ, K_ORD, K_BUCKET = TAG .. ':pq', TAG .. ':ord', TAG .. ':bucket'
local K_GNEXT, K_GTAIL, K_GWAIT = TAG .. ':gnext', TAG .. ':gtail', TAG .. ':gwait'
local TOKEN_LEN = 16
local MAX_WAKE = 16
-- Messages of priority p (1..9) wait in K_PQ, not K_QUEUED, scored
-- available_at - p * BAND: each priority has its own band of scores, the higher
-- priorities lower. 2^42 ms is about 139 years, and 9 bands stay exact in a double.
local BAND = 4398046511104

-- Whether the queue holds messages with a priority or a group (their K_ORD
-- entries); read once per call: plain queues skip the lookups below.
local ordered_known = nil
local function any_ordered()
  if ordered_known == nil then ordered_known = redis.call('EXISTS', K_ORD) == 1 end
  return ordered_known
end

-- The priority, send-time availability and group of a message with a priority or
-- a group (K_ORD: "p|available_at|-" or "p|available_at|g<group>"); nil otherwise.
local function order_of(id)
  if not any_ordered() then return nil end
  local v = redis.call('HGET', K_ORD, id)
  if not v then return nil end
  local bar = string.find(v, '|', 3, true)
  local group = nil
  if string.sub(v, bar + 1, bar + 1) == 'g' then group = string.sub(v, bar + 2) end
  return tonumber(string.sub(v, 1, 1)), tonumber(string.sub(v, 3, bar - 1)), group
end

-- Make `id` (priority p) claimable from time `at` on.
local function wait_in_line(id, at, p)
  if p and p > 0 then
    redis.call('ZADD', K_PQ, string.format('%d', at - p * BAND), id)
  else
    redis.call('ZADD', K_QUEUED, string.format('%d', at), id)
  end
end

-- Make a message that was claimed claimable again from `at` on (its group, if
-- any, is still its to lead).
local function requeue(id, at)
  wait_in_line(id, at, order_of(id))
end

-- A new message (or a redriven one) joins the queue, available from `at`: a
-- grouped one joins the end of its group and waits in line only at its head.
local function enter(id, at, p, group)
  if p > 0 or group then
    local kind = '-'
    if group then kind = 'g' .. group end
    redis.call('HSET', K_ORD, id, string.format('%d|%d|', p, at) .. kind)
    ordered_known = true
  end
  if group then
    local tail = redis.call('HGET', K_GTAIL, group)
    redis.call('HSET', K_GTAIL, group, id)
    if tail then
      redis.call('HSET', K_GNEXT, tail, id)
      -- counted by stats as ready or delayed by its own available time
      redis.call('ZADD', K_GWAIT, string.format('%d', at), id)
      return
    end
  end
  wait_in_line(id, at, p)
end

-- A message leaves the queue for good (acked or dead): the next of its group, if
-- any, waits in line from its own available time on.
local function leave(id)
  if not any_ordered() then return end
  local _, _, group = order_of(id)
  redis.call('HDEL', K_ORD, id)
  if not group then return end
  local nxt = redis.call('HGET', K_GNEXT, id)
  if nxt then
    redis.call('HDEL', K_GNEXT, id)
    redis.call('ZREM', K_GWAIT, nxt)
    local np, navail = order_of(nxt)
    wait_in_line(nxt, navail, np)
  elseif redis.call('HGET', K_GTAIL, group) == id then
    redis.call('HDEL', K_GTAIL, group)
  end
end

-- Wake up to n consumers blocked on the notification list. The list is bounded:
-- trimmed to MAX_WAKE tokens once it holds more than twice as many, so that
-- sends while no consumer waits trim it once in MAX_WAKE sends, not at each.
local function notify(n)
  if n < 1 then return end
  if n > MAX_WAKE then n = MAX_WAKE end
  local tokens = {}
  for i = 1, n do tokens[i] = '1' end
  if redis.call('LPUSH', K_NOTIFY, unpack(tokens)) > 2 * MAX_WAKE then
    redis.call('LTRIM', K_NOTIFY, 0, MAX_WAKE - 1)
  end
end

-- Whether lease `token` on message `id` is the current one.
local function holds(id, token)
  local cur = redis.call('HGET', K_LEASE, id)
  return cur and string.sub(cur, 1, TOKEN_LEN) == token
end

-- Append one JSON history entry to the message's history array.
local function append_history(id, entry)
  local cur = redis.call('HGET', K_HIST, id)
  if cur then
    redis.call('HSET', K_HIST, id, string.sub(cur, 1, -2) .. ',' .. entry .. ']')
  else
    redis.call('HSET', K_HIST, id, '[' .. entry .. ']')
  end
end

-- Drop the lease of `id` (leased set and holder).
local function unlease(id)
  redis.call('ZREM', K_LEASED, id)
  redis.call('HDEL', K_LEASE, id)
end

-- Move `id` from the live messages to the dead letters.
local function bury(id, reason, now)
  unlease(id)
  redis.call('ZREM', K_QUEUED, id)
  if any_ordered() then
    redis.call('ZREM', K_PQ, id)
    leave(id)
  end
  redis.call('ZREM', K_LIVE, id)
  redis.call('ZADD', K_DEAD, now, id)
  redis.call('HSET', K_DINFO, id, reason)
  redis.call('HINCRBY', K_COUNTERS, 'dead_lettered', 1)
end

local function lease_expired_entry(now, consumer)
  local who = consumer
  if who == '' then who = 'a consumer' end
  return cjson.encode({
    at = now, consumer = consumer, outcome = 'lease_expired',
    error = {
      type = 'LeaseExpired', traceback = '',
      message = 'the lease held by ' .. who .. ' expired: the worker crashed, '
        .. 'was killed or hung past the visibility timeout',
    },
  })
end

-- Resolve up to `budget` expired leases: dead letter when attempts are used up,
-- visible again otherwise; either way record a lease_expired history entry.
local function sweep(now, budget)
  local expired = redis.call('ZRANGEBYSCORE', K_LEASED, '-inf', now, 'LIMIT', 0, budget)
  if #expired == 0 then return 0 end
  local policy = redis.call('GET', K_POLICY)
  local max_attempts = 5
  if policy then max_attempts = tonumber(cjson.decode(policy).max_attempts) end
  local revived = 0
  for _, id in ipairs(expired) do
    local holder = redis.call('HGET', K_LEASE, id) or ''
    append_history(id, lease_expired_entry(now, string.sub(holder, TOKEN_LEN + 1)))
    local attempts = tonumber(redis.call('HGET', K_ATT, id) or '0')
    if attempts >= max_attempts then
      bury(id, 'lease_expired', now)
    else
      unlease(id)
      requeue(id, now)
      revived = revived + 1
    end
  end
  return revived
end

-- Earliest time something becomes claimable (due delayed message or lease expiry).
-- `pq`: whether K_PQ exists, `lease`: the earliest lease's end (-1: no lease), as
-- the caller read them; nil: read here.
local function next_due(pq, lease)
  local due = -1
  local q = redis.call('ZRANGE', K_QUEUED, 0, 0, 'WITHSCORES')
  if #q > 0 then due = tonumber(q[2]) end
  if pq == nil then pq = redis.call('EXISTS', K_PQ) == 1 end
  if pq then
    for p = 9, 1, -1 do
      local f = redis.call('ZRANGEBYSCORE', K_PQ, string.format('%d', -p * BAND),
        string.format('(%d', (1 - p) * BAND), 'WITHSCORES', 'LIMIT', 0, 1)
      if #f > 0 then
        local at = tonumber(f[2]) + p * BAND
        if due < 0 or at < due then due = at end
      end
    end
  end
  if lease == nil then
    local l = redis.call('ZRANGE', K_LEASED, 0, 0, 'WITHSCORES')
    lease = -1
    if #l > 0 then lease = tonumber(l[2]) end
  end
  if lease >= 0 and (due < 0 or lease < due) then due = lease end
  return due
end

-- Call `cmd key ...ids` in slices small enough for unpack().
local function each_slice(cmd, key, ids)
  for i = 1, #ids, 4000 do
    redis.call(cmd, key, unpack(ids, i, math.min(i + 3999, #ids)))
  end
end

-- Forget the stored data of messages (used by ack and purge).
local function forget(ids)
  each_slice('HDEL', K_MSG, ids)
  each_slice('HDEL', K_ATT, ids)
  each_slice('HDEL', K_HIST, ids)
end
