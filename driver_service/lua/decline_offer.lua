-- requested with an open offer -> requested, waiting: the driver refuses,
-- never to be offered this trip again, and is available again. The trip
-- keeps its place (its rank score is its request time).
local dk = {driver = K.driver, geo = K.geo, supply = K.supply, offers = K.offers}
local driver_id = A.driver_id
local t = load_doc(K.trip)
-- A trip never offered to this driver is not theirs to hear about: 404.
if not t or not related(t, driver_id) then return reply_err('not_found', 'no such trip') end
local d = load_doc(K.driver)
if not d then return reply_err('not_found', 'no such driver') end
if not one_of(A.sources, t.status) or is_null(t.offer) or t.offer.driver_id ~= driver_id then
  return reply_err('conflict', 'the trip has no open offer to this driver')
end
local now = now_ms()
if now >= t.offer.expires_ms then
  return reply_err('conflict', 'the offer expired at ' .. t.offer.expires_at)
end
jset(K.trip, t, 'offer', cjson.null)
refuse(K.trip, t, driver_id)
redis.call('ZREM', K.offer_deadlines, t.id)
wait_again(t, K.pickups)
if holds_offer(d, t.id) then clear_driver_offer(dk, d) end
sync_supply(dk, d)
emit(K.events, K.trip_events, 'trip.offer_declined', t.id, driver_id, {driver_id = driver_id}, now)
return {'ok', '', 'trip.offer_declined'}
