-- set_paused: pause or resume claiming from a queue. Enqueue keeps working while paused.
--
-- KEYS[1] config  KEYS[2] events  KEYS[3] wake  KEYS[4..13] ready lists
-- ARGV[1] now_us ('' = server TIME)   ARGV[2] events_max_len   ARGV[3] queue
-- ARGV[4] '1' to pause, '0' to resume
--
-- Returns 1 when the state changed, 0 when the queue was already so.
-- Events: 'paused' or 'resumed'. Resuming leaves wake-up tokens for the waiting tasks.

local now_ms = us_to_ms(clock_us(ARGV[1]))
local max_len, queue, pause = tonumber(ARGV[2]), ARGV[3], ARGV[4] == '1'

local was_paused = redis.call('HGET', KEYS[1], 'paused') == '1'
if was_paused == pause then return 0 end

if pause then
  redis.call('HSET', KEYS[1], 'paused', '1')
  emit(KEYS[2], max_len, 'paused', '', queue, '', 0, now_ms, nil)
else
  redis.call('HDEL', KEYS[1], 'paused')
  local waiting = 0
  for i = 4, 13 do waiting = waiting + redis.call('LLEN', KEYS[i]) end
  for _ = 1, math.min(waiting, 256) do redis.call('LPUSH', KEYS[3], '1') end
  emit(KEYS[2], max_len, 'resumed', '', queue, '', 0, now_ms, nil)
end
return 1
