-- assigned | arrived -> requested, by the assigned driver: the trip goes back
-- to its old place in the ranking (score = requested_ms), with a fresh
-- TRIP_EXPIRY_S to find a driver, and is never offered to this driver again.
local dk = {driver = K.driver, geo = K.geo, supply = K.supply, offers = K.offers}
local driver_id = A.driver_id
local t = load_doc(K.trip)
if not t or not related(t, driver_id) then return reply_err('not_found', 'no such trip') end
if t.driver_id ~= driver_id or not one_of(A.sources, t.status) then
  return reply_err('conflict', 'the trip is ' .. t.status .. ': the driver cannot cancel it')
end
local now = now_ms()
set_status(K.trip, t, K.counts, A.target)
jset(K.trip, t, 'driver_id', nil)
jset(K.trip, t, 'assigned_at', nil)
jset(K.trip, t, 'assigned_ms', nil)
jset(K.trip, t, 'arrived_at', nil)
refuse(K.trip, t, driver_id)
jset(K.trip, t, 'expires_ms', now + tonumber(A.expiry_ms))
join_queue(t, {pending = K.pending, pickups = K.pickups, demand = K.demand, expiry = K.expiry})
redis.call('ZREM', K.driver_trips, t.id)
local d = load_doc(K.driver)
if d and d.trip_id == t.id then
  jset(K.driver, d, 'trip_id', cjson.null)
  sync_supply(dk, d)
end
local data = {driver_id = driver_id}
if A.reason ~= '' then data.reason = A.reason end
emit(K.events, K.trip_events, 'trip.driver_cancelled', t.id, driver_id, data, now)
return {'ok', redis.call('JSON.GET', K.trip), 'trip.driver_cancelled'}
