-- heartbeat: refresh a worker's record and hand it any pending control command.
--
-- KEYS[1] workers  KEYS[2] worker_info  KEYS[3] worker_control  KEYS[4] events
-- ARGV[1] now_us ('' = server TIME)   ARGV[2] events_max_len   ARGV[3] worker id
-- ARGV[4] worker record JSON   ARGV[5] event kind to emit ('' = none: online, offline,
-- pool_resized)   ARGV[6] event detail
--
-- Returns the pending control command JSON (removed from the control hash), or false.
-- A worker that reports state 'offline' leaves the live set at once; its record stays for the
-- worker retention so the dashboard can show it.

local now_ms = us_to_ms(clock_us(ARGV[1]))
local max_len, worker = tonumber(ARGV[2]), ARGV[3]

local info = cjson.decode(ARGV[4])
info.last_heartbeat_ms = now_ms
redis.call('HSET', KEYS[2], worker, cjson.encode(info))
redis.call('ZADD', KEYS[1], now_ms, worker)
if ARGV[5] ~= '' then
  emit(KEYS[4], max_len, 'worker_' .. ARGV[5], '', '', worker, 0, now_ms, {'detail', ARGV[6]})
end

local command = redis.call('HGET', KEYS[3], worker)
if command then redis.call('HDEL', KEYS[3], worker) end
return command
