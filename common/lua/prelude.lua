-- Prepended to every script of the system (common/scripts.py).
--
-- Convention: ARGV[1] is a comma-separated list of fresh event ids (ULIDs),
-- ARGV[2] the trace id of the request that causes the change, ARGV[3] the
-- producer (service name). A script's own arguments start at ARGV[4].
-- Times are the server's clock (TIME), so every replica of every service
-- agrees on deadlines.

-- The prelude and the libraries are the top of each Functions library, so
-- their functions are built once, when the library is loaded, not on every
-- call; every function starts with `_begin(ARGV)`, which sets the call's
-- header below (one call runs at a time: these are reset by each call).
local _event_ids, _next_event, TRACE_ID, PRODUCER = {}, 1, nil, nil

local function _begin(argv)
  _event_ids = {}
  for id in string.gmatch(argv[1] or '', '[^,]+') do
    _event_ids[#_event_ids + 1] = id
  end
  _next_event = 1
  TRACE_ID = argv[2]
  PRODUCER = argv[3]
end

-- Whether the caller sent `n` event ids: a script that publishes only now
-- and then (a location fix that makes a driver available) is called with
-- none, and answers `needs_event_ids` before it writes anything, to be
-- called again with them.
local function has_event_ids(n)
  return #_event_ids >= n
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Epoch milliseconds to ISO 8601 UTC with milliseconds (civil-from-days).
local function iso(ms)
  local secs = math.floor(ms / 1000)
  local milli = ms - secs * 1000
  local days = math.floor(secs / 86400)
  local rem = secs - days * 86400
  local hh = math.floor(rem / 3600)
  local mm = math.floor((rem - hh * 3600) / 60)
  local ss = rem - hh * 3600 - mm * 60
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', y, m, d, hh, mm, ss, milli)
end

-- Append one event to the region's stream and, for a trip event, to the
-- trip's own event list (timeline and SSE replay). Returns the stream id.
local function emit(stream_key, trip_events_key, etype, trip_id, driver_id, data, ms)
  local id = _event_ids[_next_event]
  if not id then
    return redis.error_reply('ERR script ran out of event ids')
  end
  _next_event = _next_event + 1
  ms = ms or now_ms()
  data = data or {}
  -- `version` is common/events.py's VERSION, which the trip's list implies.
  local env = {
    id = id, type = etype, version = 1, occurred_at = iso(ms),
    producer = PRODUCER, trace_id = TRACE_ID, data = data,
  }
  if trip_id and trip_id ~= '' then env.trip_id = trip_id end
  if driver_id and driver_id ~= '' then env.driver_id = driver_id end
  local encoded = cjson.encode(env)
  local sid = redis.call('XADD', stream_key, '*', 'type', etype,
    'trip_id', trip_id or '', 'driver_id', driver_id or '', 'env', encoded)
  if trip_events_key then
    -- Only what the list's key and the trip document do not hold
    -- (common/events.py, trip_event_item): the request's data is the
    -- document's, the trip id the key's.
    local item = {sid, id, etype, ms, PRODUCER, TRACE_ID, driver_id or ''}
    if etype ~= 'trip.requested' and next(data) ~= nil then item[8] = data end
    redis.call('RPUSH', trip_events_key, cjson.encode(item))
  end
  return sid
end

-- True the first time a consumer group sees an event (idempotent handlers).
local function first_time(seen_key)
  return redis.call('SET', seen_key, '1', 'NX', 'EX', 604800) ~= false
end

local function json_get(key, path)
  local raw = redis.call('JSON.GET', key, path or '$')
  if not raw then return nil end
  local decoded = cjson.decode(raw)
  if path == nil or string.sub(path, 1, 1) == '$' then return decoded[1] end
  return decoded
end

-- ---------------------------------------------------------------------------
