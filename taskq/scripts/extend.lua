-- extend: push the lease deadline of every task a worker still holds, at its heartbeat.
--
-- KEYS[1] active  KEYS[2] tasks
-- ARGV[1] now_us ('' = server TIME)   ARGV[2] lease_ms   ARGV[3..] pairs of task id and token
--
-- Returns {lost ids..., '|', ids with a cancel request...}. A lost id is one whose lease this
-- worker no longer holds (it expired, or the task was removed): the worker must not report an
-- outcome for it. A lease whose deadline has passed stays expired even before a reaper has
-- recovered it, so whether a stalled worker keeps its task never depends on which of the two
-- calls reaches Redis first.

local now_ms = us_to_ms(clock_us(ARGV[1]))
local deadline = now_ms + tonumber(ARGV[2])

local lost, cancel = {}, {}
for i = 3, #ARGV, 2 do
  local task_id, token = ARGV[i], ARGV[i + 1]
  local rec = decode_record(redis.call('HGET', KEYS[2], task_id))
  local current = tonumber(redis.call('ZSCORE', KEYS[1], task_id))
  if rec ~= nil and rec.state == 'active' and rec.lease == token and current ~= nil
      and current > now_ms then
    redis.call('ZADD', KEYS[1], 'XX', deadline, task_id)
    if rec.cancel_requested then cancel[#cancel + 1] = task_id end
  else
    lost[#lost + 1] = task_id
  end
end

local out = lost
out[#out + 1] = '|'
for _, task_id in ipairs(cancel) do out[#out + 1] = task_id end
return out
