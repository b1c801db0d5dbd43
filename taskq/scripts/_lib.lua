-- Shared helpers, prepended to every script by taskq/scripts/__init__.py when it loads them.
-- Conventions: times named *_us are microseconds, *_ms milliseconds, both since the Unix epoch.
-- Task records are JSON objects stored in the queue's `tasks` hash; cjson in Redis encodes
-- numbers with 14 significant digits, so microsecond times are kept as strings.

-- Bucket upper bounds of the wait and run histograms, in microseconds. Filled in by the loader
-- from taskq.metrics.HISTOGRAM_BOUNDS_US so Python and Lua read one list.
local HIST_BOUNDS_US = {__HIST_BOUNDS_US__}

-- The time of this call: the caller's fake clock when it passes one, else the server's clock.
local function clock_us(arg)
  if arg ~= nil and arg ~= '' then
    return tonumber(arg)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function us_to_ms(us)
  return math.floor(us / 1000)
end

local function us_string(us)
  return string.format('%d', us)
end

-- Decode a task record; nil when the stored value is missing or not a JSON object.
local function decode_record(raw)
  if not raw then
    return nil
  end
  local ok, rec = pcall(cjson.decode, raw)
  if ok and type(rec) == 'table' then
    return rec
  end
  return nil
end

local TASK_STATES = {scheduled = true, ready = true, active = true, succeeded = true,
  retrying = true, dead = true, cancelled = true}

-- Decode the record of a task a script is about to move out of a structure: nil unless it is a
-- JSON object with a known state that cjson can encode again (a NaN or an infinite number
-- cannot be). The caller buries a nil record as corrupt before it changes anything, because
-- an error raised later in the script would leave the task popped and in no structure.
local function decode_task(raw)
  local rec = decode_record(raw)
  if rec == nil or not TASK_STATES[rec.state] or not pcall(cjson.encode, rec) then
    return nil
  end
  return rec
end

-- Index (0-based) of the histogram bucket that holds a duration in microseconds: the first bound
-- not below it, found by binary search; #HIST_BOUNDS_US is the overflow bucket.
local function hist_bucket(duration_us)
  local low, high = 1, #HIST_BOUNDS_US + 1
  while low < high do
    local middle = math.floor((low + high) / 2)
    if HIST_BOUNDS_US[middle] < duration_us then
      low = middle + 1
    else
      high = middle
    end
  end
  return low - 1
end

-- Append one transition to a stream. `fields` is a flat list of extra field/value pairs.
local function emit(stream, max_len, kind, task_id, queue, worker, attempt, t_ms, fields)
  local args = {'XADD', stream, 'MAXLEN', '~', max_len, '*',
    'kind', kind, 'task', task_id, 'queue', queue, 'worker', worker or '',
    'attempt', tostring(attempt or 0), 't', string.format('%d', t_ms)}
  if fields then
    for _, v in ipairs(fields) do
      args[#args + 1] = v
    end
  end
  redis.call(unpack(args))
end

-- The priority stored on a record, clamped to the range of ready lists (0..#ready_keys-1).
local function record_priority(rec, levels)
  local p = tonumber(rec.priority)
  if p == nil or p ~= math.floor(p) then
    return math.floor(levels / 2)
  end
  if p < 0 then return 0 end
  if p > levels - 1 then return levels - 1 end
  return p
end

-- Push a task id onto the ready list of its priority and leave a wake-up token for idle workers.
-- `ready_keys` runs from the highest priority to the lowest. `front` puts the task where the
-- next claim takes it (recovered and released tasks); otherwise it joins the back of the line.
-- New tasks always go on the left. FIFO queues claim from the right, so a task put at the front
-- goes on the right; LIFO queues claim from the left, where the front already is.
local WAKE_TOKENS_MAX = 256
local function push_ready(ready_keys, config_key, wake_key, task_id, priority, front)
  local key = ready_keys[#ready_keys - priority]
  if front and redis.call('HGET', config_key, 'lifo') ~= '1' then
    redis.call('RPUSH', key, task_id)
  else
    redis.call('LPUSH', key, task_id)
  end
  redis.call('LPUSH', wake_key, '1')
  redis.call('LTRIM', wake_key, 0, WAKE_TOKENS_MAX - 1)
end

-- Mark a task whose record cannot be decoded as dead, keeping the raw value's first bytes in the
-- error so an operator can see what was stored. Bytes outside printable ASCII show as '?', so
-- the error stays valid UTF-8 JSON whatever was stored.
local function bury_corrupt(tasks_key, dead_key, counters_key, events_key, max_len, queue, task_id,
                            raw, now_ms)
  local shown = raw and string.gsub(string.sub(raw, 1, 200), '[^\32-\126]', '?') or ''
  local rec = {id = task_id, queue = queue, name = '', state = 'dead', attempts = 0,
    priority = 0, finished_ms = now_ms,
    error = {type = 'CorruptRecord',
      message = 'the stored task record is not a JSON object with a known state: ' .. shown,
      traceback = '', truncated = false}}
  redis.call('HSET', tasks_key, task_id, cjson.encode(rec))
  redis.call('ZADD', dead_key, now_ms, task_id)
  redis.call('HINCRBY', counters_key, 'dead', 1)
  redis.call('HINCRBY', counters_key, 'corrupt', 1)
  emit(events_key, max_len, 'dead', task_id, queue, '', 0, now_ms, {'error', 'CorruptRecord'})
end

-- Collect KEYS[first .. first+count-1] into a list.
local function key_slice(first, count)
  local out = {}
  for i = first, first + count - 1 do
    out[#out + 1] = KEYS[i]
  end
  return out
end
