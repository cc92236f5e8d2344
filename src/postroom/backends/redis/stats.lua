-- stats(now): sweep expired leases, then {ready, delayed, in_flight, dead,
-- oldest enqueued_at or -1}.
local now = tonumber(ARGV[1])
local revived = sweep(now, 1000)
if revived > 0 then notify(revived) end
local ready = redis.call('ZCOUNT', K_QUEUED, '-inf', now)
local delayed = redis.call('ZCARD', K_QUEUED) - ready
local oldest = redis.call('ZRANGE', K_LIVE, 0, 0, 'WITHSCORES')
local age = -1
if #oldest > 0 then age = tonumber(oldest[2]) end
return {ready, delayed, redis.call('ZCARD', K_LEASED), redis.call('ZCARD', K_DEAD), age}
