-- claim: settle the worker's finished tasks, then lease up to `want` ready tasks.
--
-- Settling first and claiming in the same call lets a worker finish one task and take the next
-- in one round trip. A task moves from a ready list to the active set only here, and the pop and
-- the lease happen in one atomic step, so no crash can leave a claimed task in no structure.
-- Queues are tried in the order of their KEYS blocks; within a queue the highest priority wins
-- and, within a priority, the oldest task (the newest on a LIFO queue). Paused queues are skipped.
--
-- KEYS: one block of 23 keys per queue, in claim order:
--   +1..+10 ready lists, highest priority first   +11 active   +12 tasks   +13 args
--   +14 config   +15 counters   +16 wait_hist   +17 events   +18 wake   +19 results
--   +20 finished   +21 rate   +22 run_hist   +23 dead
--
-- ARGV[1]  now_us          '' = server TIME
-- ARGV[2]  worker          worker id, stored on the record and in events
-- ARGV[3]  lease_ms        lease length
-- ARGV[4]  want            maximum number of tasks to claim (0 = settle only)
-- ARGV[5]  events_max_len
-- ARGV[6]  queue count Q, then ARGV[7..6+Q] the queue names in KEYS block order
-- then     settle count S, then S groups of 5:
--          queue block index (1-based), task id, lease token, result JSON, result_ttl_ms
--          (result_ttl_ms: 0 = delete the record now, -1 = keep until deleted by hand)
--
-- Returns {claimed, fenced}:
--   claimed = flat list of groups {block index, task id, record JSON, arguments JSON or false}
--   fenced  = ids whose settle was refused because the worker no longer holds the lease
-- Events: 'succeeded' per settled task, 'started' per claimed task, 'orphaned' for a ready id
-- whose record is gone, 'dead' for a record that cannot be decoded.

local STRIDE = 23
local now_us = clock_us(ARGV[1])
local now_ms = us_to_ms(now_us)
local worker = ARGV[2]
local lease_ms = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local max_len = tonumber(ARGV[5])
local queue_count = tonumber(ARGV[6])
local second = tostring(math.floor(now_ms / 1000))

local function block_key(block, offset)
  return KEYS[(block - 1) * STRIDE + offset]
end

local function queue_name(block)
  return ARGV[6 + block]
end

-- Settle successes.
local fenced = {}
local settle_at = 7 + queue_count
local settle_count = tonumber(ARGV[settle_at])
for i = 0, settle_count - 1 do
  local at = settle_at + 1 + i * 5
  local block, task_id, token = tonumber(ARGV[at]), ARGV[at + 1], ARGV[at + 2]
  local result_json, ttl_ms = ARGV[at + 3], tonumber(ARGV[at + 4])
  local tasks_key = block_key(block, 12)
  local rec = decode_record(redis.call('HGET', tasks_key, task_id))
  if rec == nil or rec.state ~= 'active' or rec.lease ~= token then
    fenced[#fenced + 1] = task_id
    redis.call('HINCRBY', block_key(block, 15), 'fenced', 1)
  else
    redis.call('ZREM', block_key(block, 11), task_id)
    local run_us = now_us - (tonumber(rec.started_us) or now_us)
    rec.state = 'succeeded'
    rec.finished_ms = now_ms
    rec.lease = nil
    redis.call('HINCRBY', block_key(block, 22), hist_bucket(run_us), 1)
    redis.call('HINCRBY', block_key(block, 15), 'succeeded', 1)
    redis.call('HINCRBY', block_key(block, 21), 's:' .. second, 1)
    if ttl_ms == 0 then
      redis.call('HDEL', tasks_key, task_id)
      redis.call('HDEL', block_key(block, 13), task_id)
    else
      local expires = 'inf'
      if ttl_ms > 0 then expires = now_ms + ttl_ms end
      redis.call('HSET', tasks_key, task_id, cjson.encode(rec))
      redis.call('HSET', block_key(block, 19), task_id, result_json)
      redis.call('ZADD', block_key(block, 20), expires, task_id)
    end
    emit(block_key(block, 17), max_len, 'succeeded', task_id, queue_name(block), worker,
      rec.attempts, now_ms, {'run_us', us_string(run_us)})
  end
end

-- Claim.
local claimed = {}
local got = 0
for block = 1, queue_count do
  if got >= want then break end
  local config_key = block_key(block, 14)
  if redis.call('HGET', config_key, 'paused') ~= '1' then
    local pop = 'RPOP'
    if redis.call('HGET', config_key, 'lifo') == '1' then pop = 'LPOP' end
    local tasks_key = block_key(block, 12)
    for level = 1, 10 do
      local ready_key = block_key(block, level)
      while got < want do
        local task_id = redis.call(pop, ready_key)
        if not task_id then break end
        local raw = redis.call('HGET', tasks_key, task_id)
        local rec = decode_task(raw)
        if raw == false then
          redis.call('HINCRBY', block_key(block, 15), 'orphaned', 1)
          emit(block_key(block, 17), max_len, 'orphaned', task_id, queue_name(block), worker, 0,
            now_ms, nil)
        elseif rec == nil then
          bury_corrupt(tasks_key, block_key(block, 23), block_key(block, 15), block_key(block, 17),
            max_len, queue_name(block), task_id, raw, now_ms)
        elseif rec.state ~= 'ready' then
          redis.call('HINCRBY', block_key(block, 15), 'stale', 1)
        else
          rec.attempts = (tonumber(rec.attempts) or 0) + 1
          rec.state = 'active'
          rec.worker = worker
          rec.started_ms = now_ms
          rec.started_us = us_string(now_us)
          rec.lease = worker .. '#' .. tostring(rec.attempts)
          rec.cancel_requested = nil
          redis.call('ZADD', block_key(block, 11), now_ms + lease_ms, task_id)
          local wait_us = now_us - (tonumber(rec.ready_us) or now_us)
          redis.call('HINCRBY', block_key(block, 16), hist_bucket(wait_us), 1)
          local encoded = cjson.encode(rec)
          redis.call('HSET', tasks_key, task_id, encoded)
          emit(block_key(block, 17), max_len, 'started', task_id, queue_name(block), worker,
            rec.attempts, now_ms, {'wait_us', us_string(wait_us)})
          local args = redis.call('HGET', block_key(block, 13), task_id)
          claimed[#claimed + 1] = block
          claimed[#claimed + 1] = task_id
          claimed[#claimed + 1] = encoded
          claimed[#claimed + 1] = args
          got = got + 1
        end
      end
      if got >= want then break end
    end
  end
end

-- Every queue was drained (or paused): the wake tokens left describe tasks already taken, so
-- drop them and let this worker block until a new push leaves a fresh one.
if want > 0 and got < want then
  for block = 1, queue_count do
    redis.call('DEL', block_key(block, 18))
  end
end

return {claimed, fenced}
