-- fail(now, [id, token, delay_ms, reason, entry_json]...): record failed attempts of
-- held messages. delay_ms >= 0: visible again after that delay (a retry); -1: moved
-- to the dead letters with `reason`. Either way the entry joins the history. Returns
-- the 1-based positions of the records whose lease was lost (nothing is done for
-- those).
local now = tonumber(ARGV[1])
local lost, retried = {}, 0
for i = 2, #ARGV, 5 do
  local id = ARGV[i]
  if holds(id, ARGV[i + 1]) then
    append_history(id, ARGV[i + 4])
    local delay = tonumber(ARGV[i + 2])
    if delay < 0 then
      bury(id, ARGV[i + 3], now)
    else
      unlease(id)
      requeue(id, now + delay)
      retried = retried + 1
    end
  else
    lost[#lost + 1] = (i + 3) / 5
  end
end
if retried > 0 then
  redis.call('HINCRBY', K_COUNTERS, 'retried', retried)
  notify(retried)
end
return lost
