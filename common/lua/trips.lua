-- Trip helpers shared by every script that changes a trip (trip_service and
-- driver_service). Replies: {'ok', doc_json, 'type,type'},
-- {'exists', doc_json, ''} or {'err', code, detail}.

local function is_null(v)
  return v == nil or v == cjson.null
end

local function reply_err(code, detail)
  return {'err', code, detail}
end

-- A trip's request (pickup, dropoff, fare estimate, surge, distance,
-- duration) is one member holding its JSON text (common/trip/document.py,
-- PACKED): its fields come to the top of the decoded copy. Never written
-- back: no script changes a request (jset writes single members).
local function expand_request(doc)
  if type(doc.request) == 'string' then
    for k, v in pairs(cjson.decode(doc.request)) do doc[k] = v end
    doc.request = nil
  end
  return doc
end

local function load_doc(key)
  local raw = redis.call('JSON.GET', key)
  if not raw then return nil end
  return expand_request(cjson.decode(raw))
end

-- Set one top-level field in the stored document and in the decoded copy the
-- script works on. nil or null deletes it: a document keeps no null members
-- (each member costs memory, and a missing member reads as null).
local function jset(key, doc, field, value)
  if value == nil or value == cjson.null then
    redis.call('JSON.DEL', key, '$.' .. field)
    value = nil
  else
    redis.call('JSON.SET', key, '$.' .. field, cjson.encode(value))
  end
  doc[field] = value
end

local function one_of(csv, value)
  for item in string.gmatch(csv, '[^,]+') do
    if item == value then return true end
  end
  return false
end

local function contains(list, value)
  if is_null(list) then return false end
  for _, item in ipairs(list) do
    if item == value then return true end
  end
  return false
end

-- A driver who declined, let an offer expire or cancelled is never offered
-- the trip again. The list exists only once someone refused (older documents
-- carry an empty one).
local function refuse(key, doc, driver_id)
  if is_null(doc.refused) then
    redis.call('JSON.SET', key, '$.refused', cjson.encode({driver_id}))
    doc.refused = {driver_id}
  else
    redis.call('JSON.ARRAPPEND', key, '$.refused', cjson.encode(driver_id))
    table.insert(doc.refused, driver_id)
  end
end

local function hdecr(hash_key, field)
  if redis.call('HINCRBY', hash_key, field, -1) <= 0 then
    redis.call('HDEL', hash_key, field)
  end
end

local ENDED = {completed = true, cancelled = true, expired = true}

-- The status field and the per-status counters move together, and a trip
-- leaves the index of active trips (score requested_ms) in the step that
-- ends it: a script moving a trip to an end status must pass `active_key`.
local function set_status(key, doc, counts_key, status, active_key)
  hdecr(counts_key, doc.status)
  redis.call('HINCRBY', counts_key, status, 1)
  jset(key, doc, 'status', status)
  if ENDED[status] then
    if not active_key then error('set_status: ' .. status .. ' needs the active-trips key') end
    redis.call('ZREM', active_key, doc.id)
  end
end

-- A requested trip is ranked (score: requested_ms, so it keeps its place),
-- counted in its cell's demand and due to expire; while it waits without an
-- open offer it is also findable near a driver (pickups).
-- q = {pending=, pickups=, demand=, expiry=}
local function join_queue(doc, q)
  redis.call('ZADD', q.pending, doc.requested_ms, doc.id)
  redis.call('GEOADD', q.pickups, doc.pickup.lon, doc.pickup.lat, doc.id)
  redis.call('HINCRBY', q.demand, doc.cell, 1)
  redis.call('ZADD', q.expiry, doc.expires_ms, doc.id)
end

-- An offer closed without a driver: the trip waits again (findable).
local function wait_again(doc, pickups_key)
  redis.call('GEOADD', pickups_key, doc.pickup.lon, doc.pickup.lat, doc.id)
end

-- Leaving the queue, the trip drops its expiry time too (a member less in
-- the document for the rest of its life): a driver's cancel sets a fresh one.
local function leave_queue(key, doc, q)
  jset(key, doc, 'expires_ms', nil)
  redis.call('ZREM', q.pending, doc.id)
  redis.call('ZREM', q.pickups, doc.id)
  hdecr(q.demand, doc.cell)
  redis.call('ZREM', q.expiry, doc.id)
end

local function release_rider(active_key, trip_id)
  if redis.call('GET', active_key) == trip_id then
    redis.call('DEL', active_key)
  end
end

-- The assigned driver, or the driver the trip is offered to, or one who
-- refused it: a driver who may hear 409 about this trip rather than 404.
local function related(doc, driver_id)
  if doc.driver_id == driver_id then return true end
  if not is_null(doc.offer) and doc.offer.driver_id == driver_id then return true end
  return contains(doc.refused, driver_id)
end
