-- purge: delete dead tasks and their records for good.
--
-- KEYS[1] dead  KEYS[2] tasks  KEYS[3] args  KEYS[4] results  KEYS[5] counters  KEYS[6] events
-- ARGV[1] now_us ('' = server TIME)   ARGV[2] events_max_len   ARGV[3] queue
-- ARGV[4..] task ids
--
-- Returns the ids purged; ids not in the dead set are skipped.
-- Events: 'purged' per task.

local now_ms = us_to_ms(clock_us(ARGV[1]))
local max_len, queue = tonumber(ARGV[2]), ARGV[3]

local done = {}
for i = 4, #ARGV do
  local task_id = ARGV[i]
  if redis.call('ZREM', KEYS[1], task_id) == 1 then
    redis.call('HDEL', KEYS[2], task_id)
    redis.call('HDEL', KEYS[3], task_id)
    redis.call('HDEL', KEYS[4], task_id)
    redis.call('HINCRBY', KEYS[5], 'purged', 1)
    emit(KEYS[6], max_len, 'purged', task_id, queue, '', 0, now_ms, nil)
    done[#done + 1] = task_id
  end
end
return done
