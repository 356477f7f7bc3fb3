-- requested -> assigned: the driver holding the open offer takes the trip,
-- strictly before the offer's expires_at (server clock), sweeper or not.
local dk = {driver = K.driver, geo = K.geo, supply = K.supply, offers = K.offers}
local driver_id = A.driver_id
local t = load_doc(K.trip)
-- A trip never offered to this driver is not theirs to hear about: 404.
if not t or not related(t, driver_id) then return reply_err('not_found', 'no such trip') end
local d = load_doc(K.driver)
if not d then return reply_err('not_found', 'no such driver') end
if t.driver_id == driver_id and one_of(A.holding, t.status) then
  return {'ok', redis.call('JSON.GET', K.trip), ''}
end
if not one_of(A.sources, t.status) then
  return reply_err('conflict', 'the trip is ' .. t.status)
end
if is_null(t.offer) or t.offer.driver_id ~= driver_id then
  return reply_err('conflict', 'the trip has no open offer to this driver')
end
local now = now_ms()
if now >= t.offer.expires_ms then
  return reply_err('conflict', 'the offer expired at ' .. t.offer.expires_at)
end
leave_queue(K.trip, t, {pending = K.pending, pickups = K.pickups, demand = K.demand, expiry = K.expiry})
redis.call('ZREM', K.offer_deadlines, t.id)
jset(K.trip, t, 'offer', cjson.null)
jset(K.trip, t, 'driver_id', driver_id)
jset(K.trip, t, 'assigned_at', iso(now))
jset(K.trip, t, 'assigned_ms', now)
set_status(K.trip, t, K.counts, A.target)
if holds_offer(d, t.id) then clear_driver_offer(dk, d) end
jset(K.driver, d, 'trip_id', t.id)
sync_supply(dk, d)
redis.call('ZADD', K.driver_trips, now, t.id)
emit(K.events, K.trip_events, 'trip.assigned', t.id, driver_id,
  {driver_id = driver_id, assigned_at = t.assigned_at}, now)
return {'ok', redis.call('JSON.GET', K.trip), 'trip.assigned'}
