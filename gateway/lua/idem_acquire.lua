-- Claim an idempotency key for one attempt.
-- K.record the record; ARGV: fingerprint, owner, lease ms, ttl ms, trip id.
-- Returns {'acquired', trip_id} | {'mismatch'} | {'busy'} | {'done', status, body}.
-- A pending record whose lease ran out (its gateway died mid-attempt) is
-- taken over with the same trip id, so a retry cannot create a second trip.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local raw = redis.call('GET', K.record)
if not raw then
  local record = {state = 'pending', fp = A.fingerprint, owner = A.owner,
    lease_until = now + tonumber(A.lease_ms), trip_id = A.trip_id}
  redis.call('SET', K.record, cjson.encode(record), 'PX', tonumber(A.ttl_ms))
  return {'acquired', A.trip_id}
end
local record = cjson.decode(raw)
if record.fp ~= A.fingerprint then
  return {'mismatch'}
end
if record.state == 'done' then
  return {'done', tostring(record.status), record.body}
end
if tonumber(record.lease_until) > now then
  return {'busy'}
end
record.owner = A.owner
record.lease_until = now + tonumber(A.lease_ms)
redis.call('SET', K.record, cjson.encode(record), 'KEEPTTL')
return {'acquired', record.trip_id}
