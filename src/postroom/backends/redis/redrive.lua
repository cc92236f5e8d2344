-- redrive(now, mode, limit, ids...): one redrive step on the source queue.
--   'here': atomically move dead letters back onto this same queue: attempts reset,
--           redrives + 1, visible now (at the end of their group), history
--           cleared. Returns the moved ids.
--   'take': read dead letters for a move to another queue: {id, payload, ...}.
--   'drop': after they were stored on the target, remove those still dead here.
-- Without ids, the oldest `limit` dead letters are taken.
local now, mode, limit = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local ids = {}
if #ARGV > 3 then
  for i = 4, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  ids = redis.call('ZRANGE', K_DEAD, 0, limit - 1)
end
local out, n = {}, 0
for _, id in ipairs(ids) do
  if n >= limit then break end
  if redis.call('ZSCORE', K_DEAD, id) then
    n = n + 1
    if mode == 'take' then
      out[#out + 1] = id
      out[#out + 1] = redis.call('HGET', K_MSG, id)
    else
      redis.call('ZREM', K_DEAD, id)
      redis.call('HDEL', K_DINFO, id)
      redis.call('HDEL', K_HIST, id)
      if mode == 'here' then
        local payload = redis.call('HGET', K_MSG, id)
        local nl = string.find(payload, '\n', 1, true)
        local meta = cjson.decode(string.sub(payload, 1, nl - 1))
        meta.r = (meta.r or 0) + 1
        meta.a = now
        redis.call('HSET', K_MSG, id, cjson.encode(meta) .. string.sub(payload, nl))
        redis.call('HSET', K_ATT, id, 0)
        local group = meta.g
        if type(group) ~= 'string' then group = nil end
        enter(id, now, tonumber(meta.p or 0), group)
        redis.call('ZADD', K_LIVE, meta.e, id)
      else
        redis.call('HDEL', K_MSG, id)
        redis.call('HDEL', K_ATT, id)
      end
      redis.call('HINCRBY', K_COUNTERS, 'redriven', 1)
      out[#out + 1] = id
    end
  end
end
if mode == 'here' then notify(n) end
return out
