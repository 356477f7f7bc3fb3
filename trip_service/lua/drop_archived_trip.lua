-- A finished trip leaves Redis after its copy committed in the cold store,
-- only if it did not change since it was copied: the document's SHA-1 and
-- the number of its events are those of the copy. Otherwise nothing is
-- removed and the next pass copies it again (upserts).
-- Deletes only (no command that can be refused for memory), so it runs on a
-- full Redis and frees it:
--! flag: allow-oom
-- KEYS: trip, trip_events, archive_due, rider_trips, driver_trips (or the
--       rider_trips key again when the trip had no driver), then the
--       delivery records and idempotency marks of its events
-- ARGV[4]: trip id, ARGV[5]: SHA-1 of the copied document,
-- ARGV[6]: number of copied events
local raw = redis.call('JSON.GET', KEYS[1])
if raw and (redis.sha1hex(raw) ~= ARGV[5]
    or redis.call('LLEN', KEYS[2]) ~= tonumber(ARGV[6])) then
  return {'changed', '', ''}
end
for i = 6, #KEYS do
  redis.call('DEL', KEYS[i])
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[4], ARGV[4])
redis.call('ZREM', KEYS[5], ARGV[4])
redis.call('ZREM', KEYS[3], ARGV[4])
if raw then
  return {'dropped', '', ''}
end
return {'gone', '', ''}
