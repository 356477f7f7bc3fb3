-- in_progress -> completed, by the assigned driver, with the final fare; the
-- driver is available again, the rider may request again.
-- KEYS: trip, trip_events, driver, geo, supply, offers, rider_active, counts, events,
--       active
-- ARGV[4]: driver_id, ARGV[5]: allowed sources, ARGV[6]: target,
-- ARGV[7]: the final fare (JSON money)
local dk = {driver = KEYS[3], geo = KEYS[4], supply = KEYS[5], offers = KEYS[6]}
local driver_id = ARGV[4]
local t = load_doc(KEYS[1])
if not t or not related(t, driver_id) then return reply_err('not_found', 'no such trip') end
if t.driver_id ~= driver_id or not one_of(ARGV[5], t.status) then
  return reply_err('conflict', 'the trip is ' .. t.status .. ': cannot complete it')
end
local now = now_ms()
local fare = cjson.decode(ARGV[7])
set_status(KEYS[1], t, KEYS[8], ARGV[6], KEYS[10])
jset(KEYS[1], t, 'completed_at', iso(now))
jset(KEYS[1], t, 'fare', fare)
release_rider(KEYS[7], t.id)
local d = load_doc(KEYS[3])
if d and d.trip_id == t.id then
  jset(KEYS[3], d, 'trip_id', cjson.null)
  sync_supply(dk, d)
end
emit(KEYS[9], KEYS[2], 'trip.completed', t.id, driver_id, {driver_id = driver_id, fare = fare}, now)
return {'ok', redis.call('JSON.GET', KEYS[1]), 'trip.completed'}
