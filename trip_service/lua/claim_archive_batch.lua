-- The archiver claims a batch of finished trips that are due to go cold:
-- each claimed member's due time moves LEASE ms ahead, so other replicas skip
-- it while this one copies it; a claimer that dies leaves it due again when
-- the lease runs out.
-- KEYS: archive_due
-- ARGV[4]: batch size, ARGV[5]: lease in ms
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
local lease = now + tonumber(ARGV[5])
for _, trip_id in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', lease, trip_id)
end
return due
