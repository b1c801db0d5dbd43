-- trim: apply retention to finished records, dead letters and the per-second rate window.
--
-- Every removal is counted ('expired' for finished records, 'dead_trimmed' for dead letters) so
-- retention shows in stats and is never silent. Each call removes at most `batch` of each kind.
--
-- KEYS[1] finished  KEYS[2] dead  KEYS[3] tasks  KEYS[4] args  KEYS[5] results  KEYS[6] counters
-- KEYS[7] rate  KEYS[8] events
--
-- ARGV[1] now_us ('' = server TIME)   ARGV[2] dead retention in ms (-1 = keep by age)
-- ARGV[3] dead count cap (-1 = no cap)   ARGV[4] rate window in s   ARGV[5] batch
-- ARGV[6] events_max_len   ARGV[7] queue
--
-- Returns {expired, dead_trimmed, rate_fields_removed}.
-- Events: one 'trimmed' event per call that removed anything, with both counts.

local now_ms = us_to_ms(clock_us(ARGV[1]))
local dead_retention_ms, dead_cap = tonumber(ARGV[2]), tonumber(ARGV[3])
local window_s, batch = tonumber(ARGV[4]), tonumber(ARGV[5])
local max_len, queue = tonumber(ARGV[6]), ARGV[7]

local function forget(ids)
  for _, task_id in ipairs(ids) do
    redis.call('HDEL', KEYS[3], task_id)
    redis.call('HDEL', KEYS[4], task_id)
    redis.call('HDEL', KEYS[5], task_id)
  end
end

local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, batch)
if #expired > 0 then
  forget(expired)
  redis.call('ZREM', KEYS[1], unpack(expired))
  redis.call('HINCRBY', KEYS[6], 'expired', #expired)
end

local trimmed = 0
if dead_retention_ms >= 0 then
  local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now_ms - dead_retention_ms,
    'LIMIT', 0, batch)
  if #old > 0 then
    forget(old)
    redis.call('ZREM', KEYS[2], unpack(old))
    trimmed = trimmed + #old
  end
end
if dead_cap >= 0 then
  local excess = redis.call('ZCARD', KEYS[2]) - dead_cap
  if excess > 0 then
    local oldest = redis.call('ZRANGE', KEYS[2], 0, math.min(excess, batch) - 1)
    forget(oldest)
    redis.call('ZREM', KEYS[2], unpack(oldest))
    trimmed = trimmed + #oldest
  end
end
if trimmed > 0 then
  redis.call('HINCRBY', KEYS[6], 'dead_trimmed', trimmed)
end

local oldest_second = math.floor(now_ms / 1000) - window_s
local stale = {}
for _, field in ipairs(redis.call('HKEYS', KEYS[7])) do
  local second = tonumber(string.match(field, ':(%d+)$'))
  if second == nil or second < oldest_second then stale[#stale + 1] = field end
end
for i = 1, #stale, 1000 do
  redis.call('HDEL', KEYS[7], unpack(stale, i, math.min(i + 999, #stale)))
end

if #expired > 0 or trimmed > 0 then
  emit(KEYS[8], max_len, 'trimmed', '', queue, '', 0, now_ms,
    {'expired', tostring(#expired), 'dead_trimmed', tostring(trimmed)})
end
return {#expired, trimmed, #stale}
