-- requested: create the trip, rank it, make it the rider's active trip.
-- KEYS: trip, trip_events, rider_active, rider_trips, pending, pickups,
--       demand, expiry, counts, events, active
-- ARGV[4]: the document (without server times), ARGV[5]: TRIP_EXPIRY_S in ms
local existing = redis.call('JSON.GET', KEYS[1])
if existing then
  return {'exists', existing, ''}
end
local active = redis.call('GET', KEYS[3])
if active then
  return reply_err('conflict', 'the rider already has an active trip: ' .. active)
end
local doc = cjson.decode(ARGV[4])
local now = now_ms()
redis.call('JSON.SET', KEYS[1], '$', ARGV[4])
jset(KEYS[1], doc, 'requested_ms', now)
jset(KEYS[1], doc, 'requested_at', iso(now))
jset(KEYS[1], doc, 'expires_ms', now + tonumber(ARGV[5]))
redis.call('HINCRBY', KEYS[9], 'requested', 1)
redis.call('ZADD', KEYS[11], now, doc.id)
redis.call('SET', KEYS[3], doc.id)
redis.call('ZADD', KEYS[4], now, doc.id)
join_queue(doc, {pending = KEYS[5], pickups = KEYS[6], demand = KEYS[7], expiry = KEYS[8]})
emit(KEYS[10], KEYS[2], 'trip.requested', doc.id, '', {
  rider_id = doc.rider_id, product = doc.product, pickup = doc.pickup,
  dropoff = doc.dropoff, fare_estimate = doc.fare_estimate, surge = doc.surge,
  requested_at = doc.requested_at,
}, now)
return {'ok', redis.call('JSON.GET', KEYS[1]), 'trip.requested'}
