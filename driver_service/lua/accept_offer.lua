-- requested -> assigned: the driver holding the open offer takes the trip,
-- strictly before the offer's expires_at (server clock), sweeper or not.
-- KEYS: trip, trip_events, driver, geo, supply, offers, offer_deadlines,
--       driver_trips, pending, pickups, demand, expiry, counts, events
-- ARGV[4]: driver_id, ARGV[5]: allowed sources, ARGV[6]: target,
-- ARGV[7]: statuses in which a repeated accept by the winner answers 200
local dk = {driver = KEYS[3], geo = KEYS[4], supply = KEYS[5], offers = KEYS[6]}
local driver_id = ARGV[4]
local t = load_doc(KEYS[1])
-- A trip never offered to this driver is not theirs to hear about: 404.
if not t or not related(t, driver_id) then return reply_err('not_found', 'no such trip') end
local d = load_doc(KEYS[3])
if not d then return reply_err('not_found', 'no such driver') end
if t.driver_id == driver_id and one_of(ARGV[7], t.status) then
  return {'ok', redis.call('JSON.GET', KEYS[1]), ''}
end
if not one_of(ARGV[5], t.status) then
  return reply_err('conflict', 'the trip is ' .. t.status)
end
if is_null(t.offer) or t.offer.driver_id ~= driver_id then
  return reply_err('conflict', 'the trip has no open offer to this driver')
end
local now = now_ms()
if now >= t.offer.expires_ms then
  return reply_err('conflict', 'the offer expired at ' .. t.offer.expires_at)
end
leave_queue(t, {pending = KEYS[9], pickups = KEYS[10], demand = KEYS[11], expiry = KEYS[12]})
redis.call('ZREM', KEYS[7], t.id)
jset(KEYS[1], t, 'offer', cjson.null)
jset(KEYS[1], t, 'driver_id', driver_id)
jset(KEYS[1], t, 'assigned_at', iso(now))
jset(KEYS[1], t, 'assigned_ms', now)
set_status(KEYS[1], t, KEYS[13], ARGV[6])
if holds_offer(d, t.id) then clear_driver_offer(dk, d) end
jset(KEYS[3], d, 'trip_id', t.id)
sync_supply(dk, d)
redis.call('ZADD', KEYS[8], now, t.id)
emit(KEYS[14], KEYS[2], 'trip.assigned', t.id, driver_id,
  {driver_id = driver_id, assigned_at = t.assigned_at}, now)
return {'ok', redis.call('JSON.GET', KEYS[1]), 'trip.assigned'}
