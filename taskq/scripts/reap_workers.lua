-- reap_workers: mark workers whose heartbeat stopped as offline; remove them after retention.
--
-- KEYS[1] workers  KEYS[2] worker_info  KEYS[3] worker_control  KEYS[4] events
-- ARGV[1] now_us ('' = server TIME)   ARGV[2] events_max_len   ARGV[3] dead_after_ms
-- ARGV[4] retention_ms
--
-- Returns {ids marked offline..., '|', ids removed...}.
-- Events: 'worker_offline' (with reason heartbeat) and 'worker_removed'.

local now_ms = us_to_ms(clock_us(ARGV[1]))
local max_len = tonumber(ARGV[2])
local dead_after_ms, retention_ms = tonumber(ARGV[3]), tonumber(ARGV[4])

local offline, removed = {}, {}
local silent = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms - dead_after_ms)
for _, worker in ipairs(silent) do
  local raw = redis.call('HGET', KEYS[2], worker)
  local info = decode_record(raw) or {id = worker}
  local last = tonumber(redis.call('ZSCORE', KEYS[1], worker))
  if last <= now_ms - retention_ms then
    redis.call('ZREM', KEYS[1], worker)
    redis.call('HDEL', KEYS[2], worker)
    redis.call('HDEL', KEYS[3], worker)
    emit(KEYS[4], max_len, 'worker_removed', '', '', worker, 0, now_ms, nil)
    removed[#removed + 1] = worker
  elseif info.state ~= 'offline' then
    info.state = 'offline'
    info.offline_reason = 'heartbeat'
    redis.call('HSET', KEYS[2], worker, cjson.encode(info))
    emit(KEYS[4], max_len, 'worker_offline', '', '', worker, 0, now_ms,
      {'detail', 'no heartbeat for ' .. string.format('%d', now_ms - last) .. ' ms'})
    offline[#offline + 1] = worker
  end
end

local out = offline
out[#out + 1] = '|'
for _, worker in ipairs(removed) do out[#out + 1] = worker end
return out
