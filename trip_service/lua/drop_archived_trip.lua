-- A finished trip leaves Redis after its copy committed in the cold store,
-- only if it did not change since it was copied: the document's SHA-1 and
-- the number of its events are those of the copy. Otherwise nothing is
-- removed and the next pass copies it again (upserts).
-- Deletes only (no command that can be refused for memory), so it runs on a
-- full Redis and frees it:
--! flag: allow-oom
local raw = redis.call('JSON.GET', K.trip)
if raw and (redis.sha1hex(raw) ~= A.sha1
    or redis.call('LLEN', K.trip_events) ~= tonumber(A.events)) then
  return {'changed', '', ''}
end
for _, key in ipairs(K_MORE) do
  redis.call('DEL', key)
end
redis.call('DEL', K.trip, K.trip_events)
redis.call('ZREM', K.rider_trips, A.trip_id)
redis.call('ZREM', K.driver_trips, A.trip_id)
redis.call('ZREM', K.archive_due, A.trip_id)
if raw then
  return {'dropped', '', ''}
end
return {'gone', '', ''}
