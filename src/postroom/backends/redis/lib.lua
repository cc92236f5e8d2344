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
local TOKEN_LEN = 16
local MAX_WAKE = 16

-- Wake up to n consumers blocked on the notification list (bounded, never grows).
local function notify(n)
  if n < 1 then return end
  if n > MAX_WAKE then n = MAX_WAKE end
  local tokens = {}
  for i = 1, n do tokens[i] = '1' end
  if redis.call('LPUSH', K_NOTIFY, unpack(tokens)) > MAX_WAKE then
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
      redis.call('ZADD', K_QUEUED, now, id)
      revived = revived + 1
    end
  end
  return revived
end

-- Earliest time something becomes claimable (due delayed message or lease expiry).
local function next_due()
  local due = -1
  local q = redis.call('ZRANGE', K_QUEUED, 0, 0, 'WITHSCORES')
  if #q > 0 then due = tonumber(q[2]) end
  local l = redis.call('ZRANGE', K_LEASED, 0, 0, 'WITHSCORES')
  if #l > 0 and (due < 0 or tonumber(l[2]) < due) then due = tonumber(l[2]) end
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
