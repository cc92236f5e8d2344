-- enqueue(now, dedup_window_ms, mode, [id, available_ms, enqueued_ms, dedup_key,
-- priority, group, payload]...): store messages; returns one id per message (the
-- first message's id for a known dedup key). `group` is '-' for none, else 'g'
-- and the group's name. mode 'send' counts `sent`; mode 'redrive' is the second
-- step of a redrive to another queue. Either way an id already live is skipped, so
-- a repeat (a send retried after its reply was lost) is harmless.
-- Fails with NOQUEUE when the queue was never declared (or was deleted).
local now, window, mode = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
if redis.call('EXISTS', K_POLICY) == 0 then
  return redis.error_reply('NOQUEUE the queue does not exist')
end

-- Forget a few dedup keys whose window passed and whose message is gone (done by
-- sends that use dedup keys, so queues without them pay nothing).
local function forget_stale_keys()
  local stale = redis.call('ZRANGEBYSCORE', K_DEDUPX, '-inf', now, 'LIMIT', 0, 20)
  for _, key in ipairs(stale) do
    local known = redis.call('HGET', K_DEDUP, key)
    local kid = known and string.match(known, '^(.*)|')
    if kid and redis.call('ZSCORE', K_LIVE, kid) then
      redis.call('ZADD', K_DEDUPX, now + window, key)
    else
      redis.call('HDEL', K_DEDUP, key)
      redis.call('ZREM', K_DEDUPX, key)
    end
  end
end

local function known_duplicate(key)
  local known = redis.call('HGET', K_DEDUP, key)
  if not known then return nil end
  local kid, kexp = string.match(known, '^(.*)|(%d+)$')
  if tonumber(kexp) > now or redis.call('ZSCORE', K_LIVE, kid) then return kid end
  return nil
end

local out, added, swept = {}, 0, false
for i = 4, #ARGV, 7 do
  local id, key = ARGV[i], ARGV[i + 3]
  local dup = nil
  if key ~= '' then
    if not swept then
      forget_stale_keys()
      swept = true
    end
    dup = known_duplicate(key)
    if not dup then
      redis.call('HSET', K_DEDUP, key, id .. '|' .. string.format('%d', now + window))
      redis.call('ZADD', K_DEDUPX, now + window, key)
    end
  end
  -- Joins the live messages unless it is one already (one command for both).
  if not dup and redis.call('ZADD', K_LIVE, 'NX', ARGV[i + 2], id) == 0 then
    dup = id
  end
  if dup then
    out[#out + 1] = dup
  else
    redis.call('HSET', K_MSG, id, ARGV[i + 6])
    local group = nil
    if ARGV[i + 5] ~= '-' then group = string.sub(ARGV[i + 5], 2) end
    enter(id, tonumber(ARGV[i + 1]), tonumber(ARGV[i + 4]), group)
    if mode == 'redrive' then
      redis.call('HDEL', K_ATT, id)
      redis.call('HDEL', K_HIST, id)
    end
    added = added + 1
    out[#out + 1] = id
  end
end
if added > 0 then
  if mode == 'send' then redis.call('HINCRBY', K_COUNTERS, 'sent', added) end
  notify(added)
end
return out
