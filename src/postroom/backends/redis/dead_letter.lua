-- dead_letter(now, id, token, reason, entry_json): move a held message to the dead
-- letters, recording the attempt. Returns 1, or 0 if the lease was lost.
local now, id, token = tonumber(ARGV[1]), ARGV[2], ARGV[3]
if not holds(id, token) then return 0 end
append_history(id, ARGV[5])
bury(id, ARGV[4], now)
return 1
