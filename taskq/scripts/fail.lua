-- fail: record a failed attempt, then schedule a retry or move the task to dead.
--
-- The worker decides between retry and dead (it knows the task's retry policy) and passes the
-- delay; this script only applies the decision, and only while the worker still holds the lease.
-- A task someone asked to cancel while it ran is not retried: it ends cancelled, kept in the
-- finished set for its result_ttl_s like any cancelled task.
--
-- KEYS[1] active  KEYS[2] tasks  KEYS[3] scheduled  KEYS[4] dead  KEYS[5] counters  KEYS[6] rate
-- KEYS[7] run_hist  KEYS[8] events  KEYS[9] promoter_wake  KEYS[10] wake  KEYS[11] config
-- KEYS[12..21] ready lists, highest priority first  KEYS[22] finished
--
-- ARGV[1] now_us ('' = server TIME)   ARGV[2] worker   ARGV[3] events_max_len   ARGV[4] queue
-- ARGV[5] task id   ARGV[6] lease token   ARGV[7] error JSON {type, message, traceback, truncated}
-- ARGV[8] retry delay in ms: >0 schedules a retry, 0 makes the task ready at once, -1 = dead
--
-- Returns 'retrying', 'ready', 'dead', 'cancelled', or 'fenced' when the lease is no longer
-- this worker's.
-- Events: 'failed', then 'retry_scheduled' (with due_ms), 'dead' or 'cancelled'.

local now_us = clock_us(ARGV[1])
local now_ms = us_to_ms(now_us)
local worker, max_len, queue = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local task_id, token = ARGV[5], ARGV[6]
local delay_ms = tonumber(ARGV[8])
local second = tostring(math.floor(now_ms / 1000))

local rec = decode_record(redis.call('HGET', KEYS[2], task_id))
if rec == nil or rec.state ~= 'active' or rec.lease ~= token then
  redis.call('HINCRBY', KEYS[5], 'fenced', 1)
  return 'fenced'
end

local error_info = cjson.decode(ARGV[7])
local run_us = now_us - (tonumber(rec.started_us) or now_us)
redis.call('ZREM', KEYS[1], task_id)
redis.call('HINCRBY', KEYS[7], hist_bucket(run_us), 1)
redis.call('HINCRBY', KEYS[5], 'failed', 1)
redis.call('HINCRBY', KEYS[6], 'f:' .. second, 1)
rec.error = error_info
rec.lease = nil
rec.finished_ms = now_ms
emit(KEYS[8], max_len, 'failed', task_id, queue, worker, rec.attempts, now_ms,
  {'error', tostring(error_info.type), 'run_us', us_string(run_us)})

local outcome
if rec.cancel_requested then
  rec.state = 'cancelled'
  local ttl_s = tonumber(rec.result_ttl_s) or 0
  if ttl_s == 0 then
    redis.call('HDEL', KEYS[2], task_id)
  else
    local expires = 'inf'
    if ttl_s > 0 then expires = now_ms + math.floor(ttl_s * 1000) end
    redis.call('ZADD', KEYS[22], expires, task_id)
  end
  redis.call('HINCRBY', KEYS[5], 'cancelled', 1)
  emit(KEYS[8], max_len, 'cancelled', task_id, queue, worker, rec.attempts, now_ms, nil)
  if ttl_s == 0 then return 'cancelled' end
  outcome = 'cancelled'
elseif delay_ms < 0 then
  rec.state = 'dead'
  redis.call('ZADD', KEYS[4], now_ms, task_id)
  redis.call('HINCRBY', KEYS[5], 'dead', 1)
  redis.call('HINCRBY', KEYS[6], 'd:' .. second, 1)
  emit(KEYS[8], max_len, 'dead', task_id, queue, worker, rec.attempts, now_ms,
    {'error', tostring(error_info.type)})
  outcome = 'dead'
else
  redis.call('HINCRBY', KEYS[5], 'retried', 1)
  redis.call('HINCRBY', KEYS[6], 'r:' .. second, 1)
  local due_ms = now_ms + delay_ms
  rec.due_ms = due_ms
  if delay_ms == 0 then
    rec.state = 'ready'
    rec.ready_us = us_string(now_us)
    push_ready(key_slice(12, 10), KEYS[11], KEYS[10], task_id, record_priority(rec, 10), false)
    outcome = 'ready'
  else
    rec.state = 'retrying'
    -- 'retrying' in the counters is a gauge: tasks waiting to retry now.
    redis.call('HINCRBY', KEYS[5], 'retrying', 1)
    local earliest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')[2]
    redis.call('ZADD', KEYS[3], due_ms, task_id)
    if earliest == nil or due_ms < tonumber(earliest) then
      redis.call('LPUSH', KEYS[9], '1')
      redis.call('LTRIM', KEYS[9], 0, 0)
    end
    outcome = 'retrying'
  end
  emit(KEYS[8], max_len, 'retry_scheduled', task_id, queue, worker, rec.attempts, now_ms,
    {'due_ms', string.format('%d', due_ms)})
end

redis.call('HSET', KEYS[2], task_id, cjson.encode(rec))
return outcome
