-- requested: create the trip, rank it, make it the rider's active trip.
local existing = redis.call('JSON.GET', K.trip)
if existing then
  return {'exists', existing, ''}
end
local active = redis.call('GET', K.rider_active)
if active then
  return reply_err('conflict', 'the rider already has an active trip: ' .. active)
end
local doc = expand_request(cjson.decode(A.doc))
local now = now_ms()
redis.call('JSON.SET', K.trip, '$', A.doc)
jset(K.trip, doc, 'requested_ms', now)
jset(K.trip, doc, 'expires_ms', now + tonumber(A.expiry_ms))
redis.call('HINCRBY', K.counts, 'requested', 1)
redis.call('ZADD', K.active, now, doc.id)
redis.call('SET', K.rider_active, doc.id)
redis.call('ZADD', K.rider_trips, now, doc.id)
join_queue(doc, {pending = K.pending, pickups = K.pickups, demand = K.demand, expiry = K.expiry})
emit(K.events, K.trip_events, 'trip.requested', doc.id, '', {
  rider_id = doc.rider_id, product = doc.product, pickup = doc.pickup,
  dropoff = doc.dropoff, fare_estimate = doc.fare_estimate, surge = doc.surge,
  requested_at = iso(now),
}, now)
return {'ok', redis.call('JSON.GET', K.trip), 'trip.requested'}
