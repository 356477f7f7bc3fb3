-- completed -> completed with a rating, by the rider, once.
local doc = load_doc(K.trip)
if not doc or doc.rider_id ~= A.rider_id then
  return reply_err('not_found', 'no such trip')
end
if not one_of(A.sources, doc.status) then
  return reply_err('conflict', 'a trip that is ' .. doc.status .. ' cannot be rated')
end
if not is_null(doc.rating) then
  return reply_err('conflict', 'the trip is already rated')
end
local now = now_ms()
local stars = tonumber(A.stars)
local comment = cjson.null
if A.comment ~= '' then comment = A.comment end
jset(K.trip, doc, 'rating', {stars = stars, comment = comment, rated_at = iso(now)})
emit(K.events, K.trip_events, 'trip.rated', doc.id, doc.driver_id or '', {
  stars = stars, rider_id = doc.rider_id,
}, now)
return {'ok', redis.call('JSON.GET', K.trip), 'trip.rated'}
