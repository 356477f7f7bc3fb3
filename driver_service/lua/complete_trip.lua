-- in_progress -> completed, by the assigned driver, with the final fare; the
-- driver is available again, the rider may request again.
local dk = {driver = K.driver, geo = K.geo, supply = K.supply, offers = K.offers}
local driver_id = A.driver_id
local t = load_doc(K.trip)
if not t or not related(t, driver_id) then return reply_err('not_found', 'no such trip') end
if t.driver_id ~= driver_id or not one_of(A.sources, t.status) then
  return reply_err('conflict', 'the trip is ' .. t.status .. ': cannot complete it')
end
local now = now_ms()
local fare = cjson.decode(A.fare)
set_status(K.trip, t, K.counts, A.target, K.active)
jset(K.trip, t, 'completed_at', iso(now))
jset(K.trip, t, 'fare', fare)
release_rider(K.rider_active, t.id)
local d = load_doc(K.driver)
if d and d.trip_id == t.id then
  jset(K.driver, d, 'trip_id', cjson.null)
  sync_supply(dk, d)
end
emit(K.events, K.trip_events, 'trip.completed', t.id, driver_id, {driver_id = driver_id, fare = fare}, now)
return {'ok', redis.call('JSON.GET', K.trip), 'trip.completed'}
