-- A location fix: the document, and the GEO index and supply cell while
-- available. A fix is no event (too frequent for the durable stream), except
-- the one that makes the driver available (the first fix of a driver online
-- without a location): `driver.available`, which the dispatcher consumes to
-- serve the waiting trips near them, off the request's path.
-- Returns {'ok', '', types, '1' when the driver became available}.
local dk = {driver = K.driver, geo = K.geo, supply = K.supply, offers = K.offers}
local d = load_doc(K.driver)
if not d then return reply_err('not_found', 'no such driver') end
local was = driver_available(d)
-- Whether this fix makes the driver available (a fix always locates them).
local becomes = not was and driver_available({
  status = d.status, trip_id = d.trip_id, offer = d.offer, location = true,
})
if becomes and not has_event_ids(1) then
  return reply_err('needs_event_ids', 'this fix publishes driver.available')
end
local now = now_ms()
local location = {lat = tonumber(A.lat), lon = tonumber(A.lon), updated_at = iso(now)}
if A.heading ~= '' then location.heading = tonumber(A.heading) end
if A.speed_mps ~= '' then location.speed_mps = tonumber(A.speed_mps) end
-- Both fields in one call into the JSON module (each call from Lua costs
-- several us more than the command itself).
redis.call('JSON.MSET', K.driver, '$.location', cjson.encode(location),
  K.driver, '$.cell', cjson.encode(A.cell))
d.location = location
d.cell = A.cell
sync_supply(dk, d)
if becomes then
  emit(K.events, nil, 'driver.available', '', d.id, {
    product = d.product, location = {lat = location.lat, lon = location.lon},
  }, now)
  return {'ok', '', 'driver.available', '1'}
end
return {'ok', '', '', '0'}
