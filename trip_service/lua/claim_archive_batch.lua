-- The archiver claims a batch of finished trips that are due to go cold:
-- each claimed member's due time moves LEASE ms ahead, so other replicas skip
-- it while this one copies it; a claimer that dies leaves it due again when
-- the lease runs out.
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', K.archive_due, '-inf', now, 'LIMIT', 0, tonumber(A.batch))
local lease = now + tonumber(A.lease_ms)
for _, trip_id in ipairs(due) do
  redis.call('ZADD', K.archive_due, 'XX', lease, trip_id)
end
return due
