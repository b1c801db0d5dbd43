-- release: hand tasks a stopping worker still holds back to the front of their ready lists.
--
-- Used at graceful shutdown once the grace period is over. A released attempt is not counted:
-- the task did not fail, its worker was told to stop, so `attempts` goes back down by one.
--
-- KEYS[1] active  KEYS[2] tasks  KEYS[3] events  KEYS[4] wake  KEYS[5] counters  KEYS[6] config
-- KEYS[7..16] ready lists, highest priority first
--
-- ARGV[1] now_us ('' = server TIME)   ARGV[2] events_max_len   ARGV[3] queue   ARGV[4] worker
-- ARGV[5..] pairs of task id and lease token
--
-- Returns the ids released; ids whose lease this worker no longer holds are skipped.
-- The pairs are handled last to first: each push goes to the front, so the released tasks keep
-- their given order at the head of the line.
-- Events: 'released' per task.

local now_us = clock_us(ARGV[1])
local now_ms = us_to_ms(now_us)
local max_len, queue, worker = tonumber(ARGV[2]), ARGV[3], ARGV[4]

local released = {}
for i = #ARGV - 1, 5, -2 do
  local task_id, token = ARGV[i], ARGV[i + 1]
  local rec = decode_record(redis.call('HGET', KEYS[2], task_id))
  if rec ~= nil and rec.state == 'active' and rec.lease == token then
    redis.call('ZREM', KEYS[1], task_id)
    rec.state = 'ready'
    rec.lease = nil
    rec.attempts = math.max((tonumber(rec.attempts) or 1) - 1, 0)
    rec.ready_us = us_string(now_us)
    redis.call('HSET', KEYS[2], task_id, cjson.encode(rec))
    push_ready(key_slice(7, 10), KEYS[6], KEYS[4], task_id, record_priority(rec, 10), true)
    redis.call('HINCRBY', KEYS[5], 'released', 1)
    emit(KEYS[3], max_len, 'released', task_id, queue, worker, rec.attempts, now_ms, nil)
    table.insert(released, 1, task_id)
  end
end
return released
