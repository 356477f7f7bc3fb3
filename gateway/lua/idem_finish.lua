-- End an attempt: KEYS[1] the record; ARGV: owner, outcome, status, body, ttl ms.
-- outcome 'done': store the answer (status and body) for replays.
-- outcome 'forget': a failed attempt stores nothing; the key is free again.
-- outcome 'unknown': the attempt may or may not have created the trip (a
-- timeout); keep the reserved trip id and end the lease, so the next retry
-- repeats the creation with the same id instead of making a second trip.
-- Only the attempt holding the record may end it. Returns 1 if it did.
local raw = redis.call('GET', KEYS[1])
if not raw then
  return 0
end
local record = cjson.decode(raw)
if record.owner ~= ARGV[1] or record.state ~= 'pending' then
  return 0
end
if ARGV[2] == 'forget' then
  redis.call('DEL', KEYS[1])
elseif ARGV[2] == 'unknown' then
  record.lease_until = 0
  redis.call('SET', KEYS[1], cjson.encode(record), 'KEEPTTL')
else
  local done = {state = 'done', fp = record.fp, owner = record.owner,
    trip_id = record.trip_id, status = tonumber(ARGV[3]), body = ARGV[4]}
  redis.call('SET', KEYS[1], cjson.encode(done), 'PX', tonumber(ARGV[5]))
end
return 1
