-- requeue: move dead tasks of one queue back to ready (or to scheduled, with a delay).
--
-- The attempt count starts again at 0 and the last error stays on the record for reference.
--
-- KEYS[1] dead  KEYS[2] tasks  KEYS[3] scheduled  KEYS[4] events  KEYS[5] wake  KEYS[6] counters
-- KEYS[7] config  KEYS[8] promoter_wake  KEYS[9..18] ready lists, highest priority first
--
-- ARGV[1] now_us ('' = server TIME)   ARGV[2] events_max_len   ARGV[3] queue
-- ARGV[4] delay_ms (0 = ready now)   ARGV[5..] task ids
--
-- Returns the ids requeued; ids not in the dead set are skipped.
-- Events: 'requeued' per task (with due_ms when delayed).

local now_us = clock_us(ARGV[1])
local now_ms = us_to_ms(now_us)
local max_len, queue, delay_ms = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])

local done = {}
for i = 5, #ARGV do
  local task_id = ARGV[i]
  if redis.call('ZREM', KEYS[1], task_id) == 1 then
    local rec = decode_record(redis.call('HGET', KEYS[2], task_id))
    if rec ~= nil then
      rec.attempts = 0
      rec.finished_ms = nil
      rec.requeued_ms = now_ms
      local fields = nil
      if delay_ms > 0 then
        rec.state = 'scheduled'
        rec.due_ms = now_ms + delay_ms
        redis.call('ZADD', KEYS[3], rec.due_ms, task_id)
        redis.call('LPUSH', KEYS[8], '1')
        redis.call('LTRIM', KEYS[8], 0, 0)
        fields = {'due_ms', string.format('%d', rec.due_ms)}
      else
        rec.state = 'ready'
        rec.ready_us = us_string(now_us)
        push_ready(key_slice(9, 10), KEYS[7], KEYS[5], task_id, record_priority(rec, 10), false)
      end
      redis.call('HSET', KEYS[2], task_id, cjson.encode(rec))
      redis.call('HINCRBY', KEYS[6], 'requeued', 1)
      emit(KEYS[4], max_len, 'requeued', task_id, queue, '', 0, now_ms, fields)
      done[#done + 1] = task_id
    end
  end
end
return done
