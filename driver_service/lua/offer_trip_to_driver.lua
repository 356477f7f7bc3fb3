-- requested (no open offer) -> requested with an open offer to one available
-- driver: the trip's offer, the driver's offer and queue, the deadline.
-- One open offer per trip and per driver: both are checked here.
-- Rank order holds here: if an older trip waits within reach of this driver,
-- the answer is `older_waiting` with its id, to be served first.
-- KEYS: trip, trip_events, driver, geo, supply, offers, offer_deadlines,
--       events, pending, pickups
-- ARGV[4]: driver_id, ARGV[5]: distance to pickup (m), ARGV[6]: OFFER_TIMEOUT
-- in ms, ARGV[7]: allowed sources, ARGV[8]: DISPATCH_RADIUS_M, ARGV[9]: how
-- many older trips to look at, ARGV[10]: older trips to pass over (comma list)
local dk = {driver = KEYS[3], geo = KEYS[4], supply = KEYS[5], offers = KEYS[6]}
local t = load_doc(KEYS[1])
if not t or not one_of(ARGV[7], t.status) then
  return reply_err('trip_gone', 'the trip is not waiting for a driver')
end
if not is_null(t.offer) then
  return reply_err('trip_offered', 'the trip has an open offer to ' .. t.offer.driver_id)
end
local now = now_ms()
if t.expires_ms <= now then
  return reply_err('trip_gone', 'the trip is due to expire')
end
local driver_id = ARGV[4]
if contains(t.refused, driver_id) then
  return reply_err('refused', 'the driver refused this trip before')
end
local d = load_doc(KEYS[3])
if not d or d.product ~= t.product or not driver_available(d) then
  return reply_err('driver_busy', 'the driver is not available')
end
local ignore = {}
for id in string.gmatch(ARGV[10], '[^,]+') do ignore[id] = true end
local older = older_waiting(t, d, KEYS[9], KEYS[10], tonumber(ARGV[8]),
  tonumber(ARGV[9]), ignore)
if older then
  return reply_err('older_waiting', older)
end
local expires = math.min(now + tonumber(ARGV[6]), t.expires_ms)
local distance = tonumber(ARGV[5])
local payload = {
  trip_id = t.id, pickup = t.pickup, dropoff = t.dropoff, product = t.product,
  fare_estimate = t.fare_estimate, distance_to_pickup_m = distance,
  expires_at = iso(expires),
}
redis.call('DEL', KEYS[6])
redis.call('RPUSH', KEYS[6], cjson.encode(payload))
payload.expires_ms = expires
jset(KEYS[1], t, 'offer', {
  driver_id = driver_id, offered_at = iso(now), expires_ms = expires, expires_at = iso(expires),
})
jset(KEYS[3], d, 'offer', payload)
sync_supply(dk, d)
redis.call('ZADD', KEYS[7], expires, t.id)
redis.call('ZREM', KEYS[10], t.id)
emit(KEYS[8], KEYS[2], 'trip.offered', t.id, driver_id, {
  driver_id = driver_id, distance_to_pickup_m = distance, expires_at = iso(expires),
}, now)
return {'ok', '', 'trip.offered'}
