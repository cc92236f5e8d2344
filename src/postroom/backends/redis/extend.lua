-- extend(now, id, token, lease_ms): the lease now ends lease_ms from now. Returns the
-- new expiry, or -1 if the lease was lost.
local now, id, token = tonumber(ARGV[1]), ARGV[2], ARGV[3]
if not holds(id, token) then return -1 end
local expires = now + tonumber(ARGV[4])
redis.call('ZADD', K_LEASED, 'XX', expires, id)
return expires
