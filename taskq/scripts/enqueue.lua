-- enqueue: write one or more new tasks of one queue and make each ready or scheduled.
--
-- Invariant: a task id exists at most once per queue. An id that already has a record is left
-- untouched and reported as existing, which makes enqueue with a caller-supplied id idempotent.
-- Each new task lands in exactly one structure: a ready list (due now) or the scheduled set.
--
-- KEYS[1]  tasks           hash  id -> record JSON
-- KEYS[2]  args            hash  id -> arguments JSON
-- KEYS[3]  scheduled       zset  id, score = due time (ms)
-- KEYS[4]  counters        hash
-- KEYS[5]  rate            hash  '<kind>:<unix second>' -> count
-- KEYS[6]  events          stream
-- KEYS[7]  wake            list  wake-up tokens for idle workers
-- KEYS[8]  promoter_wake   list  token for a promoter sleeping past a sooner due time
-- KEYS[9]  config          hash  queue options (lifo)
-- KEYS[10..19] ready       lists, highest priority first
--
-- ARGV[1]  now_us          '' = server TIME
-- ARGV[2]  events_max_len  integer
-- ARGV[3]  queue           queue name, for events
-- ARGV[4..] groups of 5 per task:
--          id, record JSON (without times or state), arguments JSON,
--          delay_ms ('' = none), eta_ms ('' = none; absolute due time, wins over delay)
--
-- Returns {now_ms, created_1, created_2, ...}: 1 for a new task, 0 for an id that existed.
-- Events: 'enqueued' for a ready task, 'scheduled' (with due_ms) for a delayed one.

local now_us = clock_us(ARGV[1])
local now_ms = us_to_ms(now_us)
local max_len = tonumber(ARGV[2])
local queue = ARGV[3]
local ready_keys = key_slice(10, 10)
local second = tostring(math.floor(now_ms / 1000))

local out = {now_ms}
local earliest_before = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')[2]
local wake_promoter = false

for i = 4, #ARGV, 5 do
  local task_id = ARGV[i]
  if redis.call('HEXISTS', KEYS[1], task_id) == 1 then
    out[#out + 1] = 0
  else
    local rec = cjson.decode(ARGV[i + 1])
    local delay_ms, eta_ms = ARGV[i + 3], ARGV[i + 4]
    local due_ms = now_ms
    if eta_ms ~= '' then
      due_ms = tonumber(eta_ms)
    elseif delay_ms ~= '' then
      due_ms = now_ms + tonumber(delay_ms)
    end

    rec.enqueued_ms = now_ms
    rec.due_ms = due_ms
    rec.attempts = 0
    if due_ms > now_ms then
      rec.state = 'scheduled'
      redis.call('ZADD', KEYS[3], due_ms, task_id)
      if earliest_before == nil or due_ms < tonumber(earliest_before) then
        wake_promoter = true
        earliest_before = tostring(due_ms)
      end
      redis.call('HINCRBY', KEYS[4], 'scheduled', 1)
      emit(KEYS[6], max_len, 'scheduled', task_id, queue, '', 0, now_ms,
        {'due_ms', string.format('%d', due_ms), 'priority', tostring(rec.priority)})
    else
      rec.state = 'ready'
      rec.ready_us = us_string(now_us)
      push_ready(ready_keys, KEYS[9], KEYS[7], task_id, record_priority(rec, #ready_keys), false)
      emit(KEYS[6], max_len, 'enqueued', task_id, queue, '', 0, now_ms,
        {'priority', tostring(rec.priority)})
    end

    redis.call('HSET', KEYS[1], task_id, cjson.encode(rec))
    redis.call('HSET', KEYS[2], task_id, ARGV[i + 2])
    redis.call('HINCRBY', KEYS[4], 'enqueued', 1)
    redis.call('HINCRBY', KEYS[5], 'e:' .. second, 1)
    out[#out + 1] = 1
  end
end

if wake_promoter then
  redis.call('LPUSH', KEYS[8], '1')
  redis.call('LTRIM', KEYS[8], 0, 0)
end
return out
