-- cancel: remove a ready or scheduled task, or flag an active one for cooperative cancellation.
--
-- KEYS[1] tasks  KEYS[2] scheduled  KEYS[3] finished  KEYS[4] counters  KEYS[5] events
-- KEYS[6..15] ready lists, highest priority first
--
-- ARGV[1] now_us ('' = server TIME)   ARGV[2] events_max_len   ARGV[3] queue   ARGV[4] task id
-- ARGV[5] result_ttl_ms for the cancelled record (0 = delete now, -1 = keep)
--
-- Returns 'cancelled', 'requested' (active: the task body sees the flag at the worker's next
-- heartbeat), 'missing', or the state of a task that can no longer be cancelled.
-- Events: 'cancelled' or 'cancel_requested'.

local now_ms = us_to_ms(clock_us(ARGV[1]))
local max_len, queue, task_id = tonumber(ARGV[2]), ARGV[3], ARGV[4]
local ttl_ms = tonumber(ARGV[5])

local rec = decode_record(redis.call('HGET', KEYS[1], task_id))
if rec == nil then return 'missing' end

if rec.state == 'active' then
  rec.cancel_requested = true
  redis.call('HSET', KEYS[1], task_id, cjson.encode(rec))
  emit(KEYS[5], max_len, 'cancel_requested', task_id, queue, rec.worker, rec.attempts, now_ms, nil)
  return 'requested'
end

local removed = 0
if rec.state == 'ready' then
  local home = KEYS[6 + 9 - record_priority(rec, 10)]
  removed = redis.call('LREM', home, 1, task_id)
  -- A record edited by hand may name another priority than the list the id sits in.
  for i = 6, 15 do
    if removed > 0 then break end
    removed = redis.call('LREM', KEYS[i], 1, task_id)
  end
elseif rec.state == 'scheduled' or rec.state == 'retrying' then
  removed = redis.call('ZREM', KEYS[2], task_id)
  if rec.state == 'retrying' then redis.call('HINCRBY', KEYS[4], 'retrying', -1) end
else
  return rec.state
end

rec.state = 'cancelled'
rec.finished_ms = now_ms
if ttl_ms == 0 then
  redis.call('HDEL', KEYS[1], task_id)
else
  redis.call('HSET', KEYS[1], task_id, cjson.encode(rec))
  local expires = 'inf'
  if ttl_ms > 0 then expires = now_ms + ttl_ms end
  redis.call('ZADD', KEYS[3], expires, task_id)
end
redis.call('HINCRBY', KEYS[4], 'cancelled', 1)
emit(KEYS[5], max_len, 'cancelled', task_id, queue, '', rec.attempts, now_ms,
  {'removed', tostring(removed)})
return 'cancelled'
