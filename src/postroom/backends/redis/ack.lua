-- ack([id, token]...): delete the messages whose lease is still held; returns the
-- 1-based positions of the pairs whose lease was lost (nothing is done for those).
local lost, done = {}, {}
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  if holds(id, ARGV[i + 1]) then
    redis.call('HDEL', K_LEASE, id)
    done[#done + 1] = id
  else
    lost[#lost + 1] = (i + 1) / 2
  end
end
if #done > 0 then
  each_slice('ZREM', K_LEASED, done)
  each_slice('ZREM', K_LIVE, done)
  forget(done)
  redis.call('HINCRBY', K_COUNTERS, 'acked', #done)
end
return lost
