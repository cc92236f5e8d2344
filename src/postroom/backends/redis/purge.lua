-- purge(what): delete every live message ('live') or every dead letter ('dead') of
-- the queue. Returns how many were deleted.
local what = ARGV[1]
local set = K_LIVE
if what == 'dead' then set = K_DEAD end
local ids = redis.call('ZRANGE', set, 0, -1)
forget(ids)
if what == 'dead' then
  redis.call('DEL', K_DEAD, K_DINFO)
else
  redis.call('DEL', K_LIVE, K_QUEUED, K_LEASED, K_LEASE, K_PQ, K_ORD, K_GNEXT, K_GTAIL,
    K_GWAIT)
end
return #ids
