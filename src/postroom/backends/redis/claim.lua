-- claim(now, max, lease_ms, token, consumer): sweep expired leases, then lease up to
-- `max` visible messages, the highest priority first, then the earliest available
-- (due delayed messages are visible: the waiting sets are scored by available
-- time). Returns {lease_expires_at, {id, payload, attempts, ...}, next_due,
-- permit} or, when nothing was claimed, {next_due, {}, permit}; next_due is the
-- earliest time a message becomes due, a lease ends or (rate limited) a delivery
-- is allowed (-1: none), which bounds the next wait; permit is when a
-- rate-limited queue's bucket next has a token (-1: no rate limit). `now` is '*'
-- when the claim was queued behind a BLPOP: then the server's clock is read when
-- it runs.
local now, max = tonumber(ARGV[1]), tonumber(ARGV[2])
if ARGV[1] == '*' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local lease_ms, token, consumer = tonumber(ARGV[3]), ARGV[4], ARGV[5]
-- The earliest lease: one that ended is swept (with the others that did); else
-- the same read bounds the next wait. `lease`: the earliest end (-1: none; nil:
-- read again, after a sweep).
local first = redis.call('ZRANGE', K_LEASED, 0, 0, 'WITHSCORES')
local revived, lease = 0, -1
if #first > 0 then
  lease = tonumber(first[2])
  if lease <= now then
    revived = sweep(now, 1000)
    lease = nil
  end
end

-- Whether the queue has a token bucket (rate limit) or messages with a priority:
-- one read tells a plain queue, which has neither.
local special = redis.call('EXISTS', K_BUCKET, K_PQ) > 0

-- A rate-limited queue's token bucket: refilled by the time passed, capped at
-- its burst; each delivery takes one token.
local bucket, rate, tokens, refilled = nil, nil, 0, now
if special then
  bucket = redis.call('HMGET', K_BUCKET, 'rate', 'burst', 'tokens', 'at')
  rate = tonumber(bucket[1])
end
if rate then
  local burst = tonumber(bucket[2])
  tokens = tonumber(bucket[3] or burst)
  local at = tonumber(bucket[4] or now)
  if now > at then
    tokens = tokens + (now - at) * rate / 1000
  else
    refilled = at -- a clock behind another consumer's refills nothing
  end
  tokens = math.min(burst, tokens)
  if max > tokens then max = math.floor(tokens) end
end

-- When the next delivery may happen, and when the bucket has a token again
-- (-1: not rate limited), once `n` deliveries took theirs.
local pq = special and redis.call('EXISTS', K_PQ) == 1 -- whether K_PQ exists
local function due_after(n)
  local due = next_due(pq, lease)
  if not rate then return due, -1 end
  local permit = refilled
  if tokens - n < 1 then
    permit = refilled + math.ceil((1 - (tokens - n)) * 1000 / rate)
    if due >= 0 and due < permit then due = permit end
  end
  return due, permit
end

local ids = {}
-- Take up to `max` ids from K_PQ in the score range [lo, hi].
local function take(key, lo, hi)
  local got = redis.call('ZRANGEBYSCORE', key, lo, hi, 'LIMIT', 0, max - #ids)
  if #got == 0 then return end
  redis.call('ZREM', key, unpack(got))
  for _, id in ipairs(got) do ids[#ids + 1] = id end
end
if pq and max > 0 then
  for p = 9, 1, -1 do
    take(K_PQ, string.format('%d', -p * BAND), string.format('%d', now - p * BAND))
    if #ids >= max then break end
  end
end
if #ids < max then take(K_QUEUED, '-inf', now) end
if #ids == 0 then
  -- Only an empty claim looks for the queue: messages mean it exists.
  if redis.call('EXISTS', K_POLICY) == 0 then
    return redis.error_reply('NOQUEUE the queue does not exist')
  end
  if revived > 0 then notify(revived) end
  local due, permit = due_after(0)
  return {due, {}, permit}
end
if rate then
  redis.call('HSET', K_BUCKET, 'tokens', tostring(tokens - #ids), 'at', refilled)
end
local expires = now + lease_ms
local holder = token .. consumer
local zargs, hargs, out = {}, {}, {}
local payloads = redis.call('HMGET', K_MSG, unpack(ids))
for i, id in ipairs(ids) do
  zargs[2 * i - 1] = expires
  zargs[2 * i] = id
  hargs[2 * i - 1] = id
  hargs[2 * i] = holder
  out[3 * i - 2] = id
  out[3 * i - 1] = payloads[i]
  out[3 * i] = redis.call('HINCRBY', K_ATT, id, 1)
end
redis.call('ZADD', K_LEASED, unpack(zargs))
redis.call('HSET', K_LEASE, unpack(hargs))
if lease and (lease < 0 or expires < lease) then lease = expires end
local due, permit = due_after(#ids)
return {expires, out, due, permit}
