-- claim(now, max, lease_ms, token, consumer): sweep expired leases, then lease up to
-- `max` visible messages (due delayed messages are visible: the queued set is scored
-- by available time). Returns {lease_expires_at, {id, payload, attempts, ...},
-- next_due} or, when nothing was claimed, {next_due, {}}; next_due is the earliest
-- time a message becomes due or a lease ends (-1: none), which bounds the next wait. `now` is '*' when the claim
-- was queued behind a BLPOP: then the server's clock is read when it runs.
local now, max = tonumber(ARGV[1]), tonumber(ARGV[2])
if ARGV[1] == '*' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local lease_ms, token, consumer = tonumber(ARGV[3]), ARGV[4], ARGV[5]
local revived = sweep(now, 1000)
local ids = {}
if max > 0 then
  ids = redis.call('ZRANGEBYSCORE', K_QUEUED, '-inf', now, 'LIMIT', 0, max)
end
if #ids == 0 then
  -- Only an empty claim looks for the queue: messages mean it exists.
  if redis.call('EXISTS', K_POLICY) == 0 then
    return redis.error_reply('NOQUEUE the queue does not exist')
  end
  if revived > 0 then notify(revived) end
  return {next_due(), {}}
end
redis.call('ZREM', K_QUEUED, unpack(ids))
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
return {expires, out, next_due()}
