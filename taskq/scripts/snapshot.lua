-- snapshot: read the whole observable state in one atomic call, for the dashboard and stats.
--
-- Because it is one script, every figure comes from the same instant: the active count, the
-- tasks each worker holds and the counters always agree with each other.
--
-- KEYS[1] workers  KEYS[2] worker_info (both left out when ARGV[4] is '0')
-- then one block of 21 keys per queue:
--   +1..+10 ready lists, highest priority first   +11 scheduled   +12 active   +13 dead
--   +14 finished   +15 counters   +16 rate   +17 wait_hist   +18 run_hist   +19 config
--   +20 events   +21 tasks   (block offsets count from W + (block - 1) * 21)
--
-- ARGV[1] now_us ('' = server TIME)   ARGV[2] rate seconds N (the last N whole seconds)
-- ARGV[3] the most active tasks listed per queue
-- ARGV[4] W, the number of worker keys: '2' (default) or '0', for a call that reads one queue
--         of a Redis Cluster, whose worker keys live in another hash slot (workers = {})
--
-- Returns {now_ms, workers, queue_1, queue_2, ...} where
--   workers = flat {id, last heartbeat ms, record JSON, ...}
--   queue_i = {ready depths (10, highest priority first), scheduled, active, dead, finished,
--              counters (flat hash), rate (5*N counts: kinds e,s,f,r,d, oldest second first),
--              wait_hist (flat hash), run_hist (flat hash), config (flat hash),
--              last event id ('' when empty), event stream length,
--              active tasks (flat {id, lease deadline ms, worker, started_ms, name, attempts})}

local STRIDE = 21
local now_ms = us_to_ms(clock_us(ARGV[1]))
local rate_seconds = tonumber(ARGV[2])
local active_limit = tonumber(ARGV[3])
local now_s = math.floor(now_ms / 1000)
local worker_keys = tonumber(ARGV[4] or '2')

local workers = {}
if worker_keys > 0 then
  local listed = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  for i = 1, #listed, 2 do
    workers[#workers + 1] = listed[i]
    workers[#workers + 1] = listed[i + 1]
    workers[#workers + 1] = redis.call('HGET', KEYS[2], listed[i]) or '{}'
  end
end

local out = {now_ms, workers}
local queue_count = (#KEYS - worker_keys) / STRIDE
for block = 1, queue_count do
  local base = worker_keys + (block - 1) * STRIDE
  local depths = {}
  for level = 1, 10 do depths[level] = redis.call('LLEN', KEYS[base + level]) end

  local rate_fields = {}
  for _, kind in ipairs({'e', 's', 'f', 'r', 'd'}) do
    for second = now_s - rate_seconds + 1, now_s do
      rate_fields[#rate_fields + 1] = kind .. ':' .. tostring(second)
    end
  end
  local rate = redis.call('HMGET', KEYS[base + 16], unpack(rate_fields))
  for i = 1, #rate do rate[i] = tonumber(rate[i]) or 0 end

  local last = redis.call('XREVRANGE', KEYS[base + 20], '+', '-', 'COUNT', 1)
  local last_id = ''
  if #last > 0 then last_id = last[1][1] end

  local active = {}
  local leased = redis.call('ZRANGE', KEYS[base + 12], 0, active_limit - 1, 'WITHSCORES')
  for i = 1, #leased, 2 do
    local rec = decode_record(redis.call('HGET', KEYS[base + 21], leased[i]))
    active[#active + 1] = leased[i]
    active[#active + 1] = leased[i + 1]
    if rec ~= nil then
      active[#active + 1] = tostring(rec.worker or '')
      active[#active + 1] = tostring(rec.started_ms or 0)
      active[#active + 1] = tostring(rec.name or '')
      active[#active + 1] = tostring(rec.attempts or 0)
    else
      for _ = 1, 4 do active[#active + 1] = '' end
    end
  end

  out[#out + 1] = {depths,
    redis.call('ZCARD', KEYS[base + 11]), redis.call('ZCARD', KEYS[base + 12]),
    redis.call('ZCARD', KEYS[base + 13]), redis.call('ZCARD', KEYS[base + 14]),
    redis.call('HGETALL', KEYS[base + 15]), rate,
    redis.call('HGETALL', KEYS[base + 17]), redis.call('HGETALL', KEYS[base + 18]),
    redis.call('HGETALL', KEYS[base + 19]), last_id, redis.call('XLEN', KEYS[base + 20]),
    active}
end
return out
