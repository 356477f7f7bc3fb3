-- requested | assigned | arrived -> cancelled, by the rider. A driver holding
-- an offer or the trip is named in the event; driver_service frees them.
-- KEYS: trip, trip_events, rider_active, pending, pickups, demand, expiry,
--       counts, events, active
-- ARGV[4]: rider_id, ARGV[5]: allowed sources, ARGV[6]: target,
-- ARGV[7]: reason ('' for none)
local doc = load_doc(KEYS[1])
if not doc or doc.rider_id ~= ARGV[4] then
  return reply_err('not_found', 'no such trip')
end
if not one_of(ARGV[5], doc.status) then
  return reply_err('conflict', 'a trip that is ' .. doc.status .. ' cannot be cancelled')
end
local now = now_ms()
local freed = ''
local stage = doc.status
if doc.status == 'requested' then
  leave_queue(doc, {pending = KEYS[4], pickups = KEYS[5], demand = KEYS[6], expiry = KEYS[7]})
  if not is_null(doc.offer) then
    freed = doc.offer.driver_id
    stage = 'offered'
    jset(KEYS[1], doc, 'offer', cjson.null)
    -- It was offered to them: they hear 409 about it, not 404 (related()).
    redis.call('JSON.ARRAPPEND', KEYS[1], '$.refused', cjson.encode(freed))
  end
else
  freed = doc.driver_id
end
set_status(KEYS[1], doc, KEYS[8], ARGV[6], KEYS[10])
jset(KEYS[1], doc, 'cancelled_at', iso(now))
jset(KEYS[1], doc, 'cancelled_by', 'rider')
if ARGV[7] ~= '' then jset(KEYS[1], doc, 'cancel_reason', ARGV[7]) end
release_rider(KEYS[3], doc.id)
local data = {cancelled_by = 'rider', stage = stage}
if ARGV[7] ~= '' then data.reason = ARGV[7] end
if freed ~= '' then data.driver_id = freed end
emit(KEYS[9], KEYS[2], 'trip.cancelled', doc.id, freed, data, now)
return {'ok', redis.call('JSON.GET', KEYS[1]), 'trip.cancelled'}
