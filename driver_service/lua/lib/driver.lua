-- Driver helpers, after the trip library. A driver is AVAILABLE when online,
-- located, not on a trip and without an open offer; exactly the available
-- drivers are in the GEO index of their product and counted in supply.
-- dk = {driver=, geo=, supply=, offers=}

local function driver_available(d)
  return d.status == 'online' and is_null(d.trip_id) and is_null(d.offer)
    and not is_null(d.location)
end

-- Bring the GEO index and the supply counts in line with the document.
-- Returns whether the driver is available.
local function sync_supply(dk, d)
  if driver_available(d) then
    redis.call('GEOADD', dk.geo, d.location.lon, d.location.lat, d.id)
    if d.supply_cell ~= d.cell then
      if not is_null(d.supply_cell) then hdecr(dk.supply, d.supply_cell) end
      redis.call('HINCRBY', dk.supply, d.cell, 1)
      jset(dk.driver, d, 'supply_cell', d.cell)
    end
    return true
  end
  redis.call('ZREM', dk.geo, d.id)
  if not is_null(d.supply_cell) then
    hdecr(dk.supply, d.supply_cell)
    jset(dk.driver, d, 'supply_cell', cjson.null)
  end
  return false
end

-- The offer queue only ever holds the open offer: closing it empties it.
local function clear_driver_offer(dk, d)
  redis.call('DEL', dk.offers)
  jset(dk.driver, d, 'offer', cjson.null)
end

local function holds_offer(d, trip_id)
  return d ~= nil and not is_null(d.offer) and d.offer.trip_id == trip_id
end

local function trip_offered_to(t, driver_id)
  return t ~= nil and t.status == 'requested' and not is_null(t.offer)
    and t.offer.driver_id == driver_id
end

-- A step of the state machine's ADVANCES: the assigned driver moves the
-- trip on. k = {trip=, trip_events=, counts=, events=}
local function advance_trip(k, driver_id, sources, target, stamp, etype)
  local t = load_doc(k.trip)
  if not t or not related(t, driver_id) then
    return reply_err('not_found', 'no such trip')
  end
  if t.driver_id ~= driver_id or not one_of(sources, t.status) then
    return reply_err('conflict', 'the trip is ' .. t.status .. ': cannot move it to ' .. target)
  end
  local now = now_ms()
  set_status(k.trip, t, k.counts, target)
  jset(k.trip, t, stamp, iso(now))
  if target == 'in_progress' then jset(k.trip, t, 'started_ms', now) end
  emit(k.events, k.trip_events, etype, t.id, driver_id, {driver_id = driver_id}, now)
  return {'ok', redis.call('JSON.GET', k.trip), etype}
end
