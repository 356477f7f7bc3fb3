-- assigned | arrived -> requested, by the assigned driver: the trip goes back
-- to its old place in the ranking (score = requested_ms), with a fresh
-- TRIP_EXPIRY_S to find a driver, and is never offered to this driver again.
-- KEYS: trip, trip_events, driver, geo, supply, offers, driver_trips, pending,
--       pickups, demand, expiry, counts, events
-- ARGV[4]: driver_id, ARGV[5]: allowed sources, ARGV[6]: target,
-- ARGV[7]: reason (''), ARGV[8]: TRIP_EXPIRY_S in ms
local dk = {driver = KEYS[3], geo = KEYS[4], supply = KEYS[5], offers = KEYS[6]}
local driver_id = ARGV[4]
local t = load_doc(KEYS[1])
if not t or not related(t, driver_id) then return reply_err('not_found', 'no such trip') end
if t.driver_id ~= driver_id or not one_of(ARGV[5], t.status) then
  return reply_err('conflict', 'the trip is ' .. t.status .. ': the driver cannot cancel it')
end
local now = now_ms()
set_status(KEYS[1], t, KEYS[12], ARGV[6])
jset(KEYS[1], t, 'driver_id', nil)
jset(KEYS[1], t, 'assigned_at', nil)
jset(KEYS[1], t, 'assigned_ms', nil)
jset(KEYS[1], t, 'arrived_at', nil)
redis.call('JSON.ARRAPPEND', KEYS[1], '$.refused', cjson.encode(driver_id))
jset(KEYS[1], t, 'expires_ms', now + tonumber(ARGV[8]))
join_queue(t, {pending = KEYS[8], pickups = KEYS[9], demand = KEYS[10], expiry = KEYS[11]})
redis.call('ZREM', KEYS[7], t.id)
local d = load_doc(KEYS[3])
if d and d.trip_id == t.id then
  jset(KEYS[3], d, 'trip_id', cjson.null)
  sync_supply(dk, d)
end
local data = {driver_id = driver_id}
if ARGV[7] ~= '' then data.reason = ARGV[7] end
emit(KEYS[13], KEYS[2], 'trip.driver_cancelled', t.id, driver_id, data, now)
return {'ok', redis.call('JSON.GET', KEYS[1]), 'trip.driver_cancelled'}
