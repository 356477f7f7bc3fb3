-- requested | assigned | arrived -> cancelled, by the rider. A driver holding
-- an offer or the trip is named in the event; driver_service frees them.
local doc = load_doc(K.trip)
if not doc or doc.rider_id ~= A.rider_id then
  return reply_err('not_found', 'no such trip')
end
if not one_of(A.sources, doc.status) then
  return reply_err('conflict', 'a trip that is ' .. doc.status .. ' cannot be cancelled')
end
local now = now_ms()
local freed = ''
local stage = doc.status
if doc.status == 'requested' then
  leave_queue(K.trip, doc, {pending = K.pending, pickups = K.pickups, demand = K.demand, expiry = K.expiry})
  if not is_null(doc.offer) then
    freed = doc.offer.driver_id
    stage = 'offered'
    jset(K.trip, doc, 'offer', cjson.null)
    -- It was offered to them: they hear 409 about it, not 404 (related()).
    refuse(K.trip, doc, freed)
  end
else
  freed = doc.driver_id
end
set_status(K.trip, doc, K.counts, A.target, K.active)
jset(K.trip, doc, 'cancelled_at', iso(now))
jset(K.trip, doc, 'cancelled_by', 'rider')
if A.reason ~= '' then jset(K.trip, doc, 'cancel_reason', A.reason) end
release_rider(K.rider_active, doc.id)
local data = {cancelled_by = 'rider', stage = stage}
if A.reason ~= '' then data.reason = A.reason end
if freed ~= '' then data.driver_id = freed end
emit(K.events, K.trip_events, 'trip.cancelled', doc.id, freed, data, now)
return {'ok', redis.call('JSON.GET', K.trip), 'trip.cancelled'}
