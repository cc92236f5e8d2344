-- ack(retried, [id, token]...): delete the messages whose lease is still held;
-- returns the 1-based positions of the pairs whose lease was lost (nothing is done
-- for those). `retried` is '1' when the call is sent again after its connection
-- broke: the first try may have run and deleted the message before its reply was
-- lost, so a message that no longer exists at all (neither live nor dead) counts as
-- acked, not as a lost lease. A message that is live again (leased by another
-- consumer, or visible) or dead is a lost lease either way.
local retried = ARGV[1] == '1'
local lost, done = {}, {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  if holds(id, ARGV[i + 1]) then
    redis.call('HDEL', K_LEASE, id)
    done[#done + 1] = id
  elseif not (retried and not redis.call('ZSCORE', K_LIVE, id)
      and not redis.call('ZSCORE', K_DEAD, id)) then
    lost[#lost + 1] = i / 2
  end
end
if #done > 0 then
  if any_ordered() then
    for _, id in ipairs(done) do leave(id) end
  end
  each_slice('ZREM', K_LEASED, done)
  each_slice('ZREM', K_LIVE, done)
  forget(done)
  redis.call('HINCRBY', K_COUNTERS, 'acked', #done)
end
return lost
