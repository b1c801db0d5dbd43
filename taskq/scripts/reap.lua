-- reap: return tasks whose lease expired to the front of their ready list.
--
-- A lease expires when its worker stopped extending it (crashed, killed, partitioned). The task
-- keeps the attempt it used; when that attempt was its last allowed one, it goes dead with a
-- LeaseExpired error instead, so a task that kills every worker that runs it cannot loop forever.
-- Idempotent: a second reaper finds nothing left to do.
--
-- KEYS[1] active  KEYS[2] tasks  KEYS[3] events  KEYS[4] wake  KEYS[5] counters  KEYS[6] config
-- KEYS[7] dead  KEYS[8] rate  KEYS[9..18] ready lists, highest priority first
--
-- ARGV[1] now_us ('' = server TIME)   ARGV[2] events_max_len   ARGV[3] queue   ARGV[4] batch
--
-- Returns {recovered ids..., then '|', then ids that went dead}.
-- Events: 'recovered' (with the previous worker), or 'dead' with error LeaseExpired.

local now_us = clock_us(ARGV[1])
local now_ms = us_to_ms(now_us)
local max_len, queue, batch = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local second = tostring(math.floor(now_ms / 1000))

local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, batch)
local recovered, buried = {}, {}
-- Last to first: each recovered task is pushed to the front, so the one whose lease ran out
-- first ends up claimed first.
for i = #expired, 1, -1 do
  local task_id = expired[i]
  redis.call('ZREM', KEYS[1], task_id)
  local raw = redis.call('HGET', KEYS[2], task_id)
  local rec = decode_task(raw)
  if raw == false then
    redis.call('HINCRBY', KEYS[5], 'orphaned', 1)
  elseif rec == nil then
    bury_corrupt(KEYS[2], KEYS[7], KEYS[5], KEYS[3], max_len, queue, task_id, raw, now_ms)
    table.insert(buried, 1, task_id)
  elseif rec.state == 'active' then
    local previous = rec.worker or ''
    local attempts = tonumber(rec.attempts) or 0
    local max_retries = tonumber(rec.max_retries) or 0
    rec.lease = nil
    rec.recoveries = (tonumber(rec.recoveries) or 0) + 1
    if attempts > max_retries then
      rec.state = 'dead'
      rec.finished_ms = now_ms
      rec.error = {type = 'LeaseExpired', traceback = '', truncated = false,
        message = 'the lease of worker ' .. previous .. ' expired on attempt ' ..
          tostring(attempts) .. ', the last one allowed (max_retries=' ..
          tostring(max_retries) .. ')'}
      redis.call('ZADD', KEYS[7], now_ms, task_id)
      redis.call('HINCRBY', KEYS[5], 'dead', 1)
      redis.call('HINCRBY', KEYS[8], 'd:' .. second, 1)
      emit(KEYS[3], max_len, 'dead', task_id, queue, previous, attempts, now_ms,
        {'error', 'LeaseExpired'})
      table.insert(buried, 1, task_id)
    else
      rec.state = 'ready'
      rec.ready_us = us_string(now_us)
      redis.call('HINCRBY', KEYS[5], 'recovered', 1)
      push_ready(key_slice(9, 10), KEYS[6], KEYS[4], task_id, record_priority(rec, 10), true)
      emit(KEYS[3], max_len, 'recovered', task_id, queue, previous, attempts, now_ms, nil)
      table.insert(recovered, 1, task_id)
    end
    redis.call('HSET', KEYS[2], task_id, cjson.encode(rec))
  end
end

local out = recovered
out[#out + 1] = '|'
for _, task_id in ipairs(buried) do out[#out + 1] = task_id end
return out
