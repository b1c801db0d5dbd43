-- progress: store a running task's progress on its record and announce it.
--
-- KEYS[1] tasks  KEYS[2] events
-- ARGV[1] now_us ('' = server TIME)   ARGV[2] events_max_len   ARGV[3] queue   ARGV[4] task id
-- ARGV[5] lease token   ARGV[6] fraction in [0, 1]   ARGV[7] message
--
-- Returns 1, or 0 when the worker no longer holds the lease (nothing is written).
-- Events: 'progress' with the fraction and message.

local now_ms = us_to_ms(clock_us(ARGV[1]))
local max_len, queue, task_id, token = tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]

local rec = decode_record(redis.call('HGET', KEYS[1], task_id))
if rec == nil or rec.state ~= 'active' or rec.lease ~= token then return 0 end
rec.progress = {fraction = tonumber(ARGV[6]), message = ARGV[7], t_ms = now_ms}
redis.call('HSET', KEYS[1], task_id, cjson.encode(rec))
emit(KEYS[2], max_len, 'progress', task_id, queue, rec.worker, rec.attempts, now_ms,
  {'fraction', ARGV[6], 'message', ARGV[7]})
return 1
