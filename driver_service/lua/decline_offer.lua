-- requested with an open offer -> requested, waiting: the driver refuses,
-- never to be offered this trip again, and is available again. The trip
-- keeps its place (its rank score is its request time).
-- KEYS: trip, trip_events, driver, geo, supply, offers, offer_deadlines, events,
--       pickups
-- ARGV[4]: driver_id, ARGV[5]: allowed sources
local dk = {driver = KEYS[3], geo = KEYS[4], supply = KEYS[5], offers = KEYS[6]}
local driver_id = ARGV[4]
local t = load_doc(KEYS[1])
-- A trip never offered to this driver is not theirs to hear about: 404.
if not t or not related(t, driver_id) then return reply_err('not_found', 'no such trip') end
local d = load_doc(KEYS[3])
if not d then return reply_err('not_found', 'no such driver') end
if not one_of(ARGV[5], t.status) or is_null(t.offer) or t.offer.driver_id ~= driver_id then
  return reply_err('conflict', 'the trip has no open offer to this driver')
end
local now = now_ms()
if now >= t.offer.expires_ms then
  return reply_err('conflict', 'the offer expired at ' .. t.offer.expires_at)
end
jset(KEYS[1], t, 'offer', cjson.null)
redis.call('JSON.ARRAPPEND', KEYS[1], '$.refused', cjson.encode(driver_id))
redis.call('ZREM', KEYS[7], t.id)
wait_again(t, KEYS[9])
if holds_offer(d, t.id) then clear_driver_offer(dk, d) end
sync_supply(dk, d)
emit(KEYS[8], KEYS[2], 'trip.offer_declined', t.id, driver_id, {driver_id = driver_id}, now)
return {'ok', '', 'trip.offer_declined'}
