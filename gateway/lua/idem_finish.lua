-- End an attempt: K.record the record; ARGV: owner, outcome, status, body, ttl ms.
-- outcome 'done': store the answer (status and body) for replays.
-- outcome 'forget': a failed attempt stores nothing; the key is free again.
-- outcome 'unknown': the attempt may or may not have created the trip (a
-- timeout); keep the reserved trip id and end the lease, so the next retry
-- repeats the creation with the same id instead of making a second trip.
-- Only the attempt holding the record may end it. Returns 1 if it did.
local raw = redis.call('GET', K.record)
if not raw then
  return 0
end
local record = cjson.decode(raw)
if record.owner ~= A.owner or record.state ~= 'pending' then
  return 0
end
if A.outcome == 'forget' then
  redis.call('DEL', K.record)
elseif A.outcome == 'unknown' then
  record.lease_until = 0
  redis.call('SET', K.record, cjson.encode(record), 'KEEPTTL')
else
  local done = {state = 'done', fp = record.fp, owner = record.owner,
    trip_id = record.trip_id, status = tonumber(A.status), body = A.body}
  redis.call('SET', K.record, cjson.encode(done), 'PX', tonumber(A.ttl_ms))
end
return 1
