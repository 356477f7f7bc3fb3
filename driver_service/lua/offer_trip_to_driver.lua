-- requested (no open offer) -> requested with an open offer to one available
-- driver: the trip's offer, the driver's offer and queue, the deadline.
-- One open offer per trip and per driver: both are checked here.
-- Rank order holds here: if an older trip waits within reach of this driver,
-- the answer is `older_waiting` with its id, to be served first.
local dk = {driver = K.driver, geo = K.geo, supply = K.supply, offers = K.offers}
local t = load_doc(K.trip)
if not t or not one_of(A.sources, t.status) then
  return reply_err('trip_gone', 'the trip is not waiting for a driver')
end
if not is_null(t.offer) then
  return reply_err('trip_offered', 'the trip has an open offer to ' .. t.offer.driver_id)
end
local now = now_ms()
if t.expires_ms <= now then
  return reply_err('trip_gone', 'the trip is due to expire')
end
local driver_id = A.driver_id
if contains(t.refused, driver_id) then
  return reply_err('refused', 'the driver refused this trip before')
end
local d = load_doc(K.driver)
if not d or d.product ~= t.product or not driver_available(d) then
  return reply_err('driver_busy', 'the driver is not available')
end
local ignore = {}
for id in string.gmatch(A.pass_over, '[^,]+') do ignore[id] = true end
local older = older_waiting(t, d, K.pending, K.pickups, tonumber(A.radius_m),
  tonumber(A.older_checked), ignore)
if older then
  return reply_err('older_waiting', older)
end
local expires = math.min(now + tonumber(A.timeout_ms), t.expires_ms)
local distance = tonumber(A.distance_m)
local payload = {
  trip_id = t.id, pickup = t.pickup, dropoff = t.dropoff, product = t.product,
  fare_estimate = t.fare_estimate, distance_to_pickup_m = distance,
  expires_at = iso(expires),
}
redis.call('DEL', K.offers)
redis.call('RPUSH', K.offers, cjson.encode(payload))
payload.expires_ms = expires
jset(K.trip, t, 'offer', {
  driver_id = driver_id, offered_at = iso(now), expires_ms = expires, expires_at = iso(expires),
})
jset(K.driver, d, 'offer', payload)
sync_supply(dk, d)
redis.call('ZADD', K.offer_deadlines, expires, t.id)
redis.call('ZREM', K.pickups, t.id)
emit(K.events, K.trip_events, 'trip.offered', t.id, driver_id, {
  driver_id = driver_id, distance_to_pickup_m = distance, expires_at = iso(expires),
}, now)
return {'ok', '', 'trip.offered'}
