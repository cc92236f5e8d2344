-- retry(now, id, token, delay_ms, entry_json): make a held message visible again
-- after the delay and record the failed attempt. Returns 1, or 0 if the lease was lost.
local now, id, token = tonumber(ARGV[1]), ARGV[2], ARGV[3]
if not holds(id, token) then return 0 end
append_history(id, ARGV[5])
unlease(id)
redis.call('ZADD', K_QUEUED, now + tonumber(ARGV[4]), id)
redis.call('HINCRBY', K_COUNTERS, 'retried', 1)
notify(1)
return 1
