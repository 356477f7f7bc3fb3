-- completed -> completed with a rating, by the rider, once.
-- KEYS: trip, trip_events, events
-- ARGV[4]: rider_id, ARGV[5]: allowed sources, ARGV[6]: stars,
-- ARGV[7]: comment ('' for none)
local doc = load_doc(KEYS[1])
if not doc or doc.rider_id ~= ARGV[4] then
  return reply_err('not_found', 'no such trip')
end
if not one_of(ARGV[5], doc.status) then
  return reply_err('conflict', 'a trip that is ' .. doc.status .. ' cannot be rated')
end
if not is_null(doc.rating) then
  return reply_err('conflict', 'the trip is already rated')
end
local now = now_ms()
local stars = tonumber(ARGV[6])
local comment = cjson.null
if ARGV[7] ~= '' then comment = ARGV[7] end
jset(KEYS[1], doc, 'rating', {stars = stars, comment = comment, rated_at = iso(now)})
emit(KEYS[3], KEYS[2], 'trip.rated', doc.id, doc.driver_id or '', {
  stars = stars, rider_id = doc.rider_id,
}, now)
return {'ok', redis.call('JSON.GET', KEYS[1]), 'trip.rated'}
