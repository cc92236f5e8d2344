-- stats(now): sweep expired leases, then {ready, delayed, in_flight, dead,
-- oldest enqueued_at or -1}. A message waiting behind the head of its group
-- counts by its own available time: ready once it has passed, else delayed (as
-- on every backend: see docs/scheduling.md).
local now = tonumber(ARGV[1])
local revived = sweep(now, 1000)
if revived > 0 then notify(revived) end
local delayed = redis.call('ZCOUNT', K_QUEUED, '(' .. now, '+inf')
if redis.call('EXISTS', K_PQ) == 1 then
  for p = 1, 9 do
    delayed = delayed + redis.call('ZCOUNT', K_PQ, string.format('(%d', now - p * BAND),
      string.format('(%d', (1 - p) * BAND))
  end
end
delayed = delayed + redis.call('ZCOUNT', K_GWAIT, '(' .. now, '+inf')
local in_flight = redis.call('ZCARD', K_LEASED)
local ready = redis.call('ZCARD', K_LIVE) - in_flight - delayed
local oldest = redis.call('ZRANGE', K_LIVE, 0, 0, 'WITHSCORES')
local age = -1
if #oldest > 0 then age = tonumber(oldest[2]) end
return {ready, delayed, in_flight, redis.call('ZCARD', K_DEAD), age}
