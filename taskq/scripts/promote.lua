-- promote: move scheduled and retrying tasks whose due time has come to their ready lists.
--
-- Invariant: a task is pushed to ready only by the call that removed it from the scheduled set.
-- The removal and the push happen in this one atomic call, so any number of promoters can run
-- side by side without a lock and every task moves exactly once.
--
-- KEYS[1] scheduled  KEYS[2] tasks  KEYS[3] events  KEYS[4] wake  KEYS[5] counters
-- KEYS[6] config  KEYS[7] dead  KEYS[8..17] ready lists, highest priority first
--
-- ARGV[1] now_us ('' = server TIME)   ARGV[2] events_max_len   ARGV[3] queue
-- ARGV[4] batch: the most tasks moved by one call
--
-- Returns {moved, next_due_ms, now_ms}: next_due_ms is the earliest remaining due time, or -1.
-- Events: 'promoted' per task (with the lag behind its due time in ms).

local now_us = clock_us(ARGV[1])
local now_ms = us_to_ms(now_us)
local max_len, queue, batch = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local ready_keys = key_slice(8, 10)

local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'WITHSCORES', 'LIMIT', 0, batch)
local moved = 0
for i = 1, #due, 2 do
  local task_id, due_ms = due[i], tonumber(due[i + 1])
  if redis.call('ZREM', KEYS[1], task_id) == 1 then
    local raw = redis.call('HGET', KEYS[2], task_id)
    local rec = decode_task(raw)
    if raw == false then
      redis.call('HINCRBY', KEYS[5], 'orphaned', 1)
      emit(KEYS[3], max_len, 'orphaned', task_id, queue, '', 0, now_ms, nil)
    elseif rec == nil then
      bury_corrupt(KEYS[2], KEYS[7], KEYS[5], KEYS[3], max_len, queue, task_id, raw, now_ms)
    else
      if rec.state == 'retrying' then redis.call('HINCRBY', KEYS[5], 'retrying', -1) end
      rec.state = 'ready'
      rec.ready_us = us_string(now_us)
      redis.call('HSET', KEYS[2], task_id, cjson.encode(rec))
      push_ready(ready_keys, KEYS[6], KEYS[4], task_id, record_priority(rec, 10), false)
      redis.call('HINCRBY', KEYS[5], 'promoted', 1)
      emit(KEYS[3], max_len, 'promoted', task_id, queue, '', rec.attempts, now_ms,
        {'lag_ms', string.format('%d', now_ms - due_ms)})
      moved = moved + 1
    end
  end
end

local next_due = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
if next_due == nil then next_due = -1 else next_due = tonumber(next_due) end
return {moved, next_due, now_ms}
