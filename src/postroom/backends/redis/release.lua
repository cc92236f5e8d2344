-- release(now, [id, token]...): give held messages back at once without counting the
-- attempt (graceful shutdown). Lost leases are skipped silently.
local now = tonumber(ARGV[1])
local n = 0
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  if holds(id, ARGV[i + 1]) then
    unlease(id)
    requeue(id, now)
    if redis.call('HINCRBY', K_ATT, id, -1) < 0 then redis.call('HSET', K_ATT, id, 0) end
    n = n + 1
  end
end
notify(n)
return n
