-- Claim an idempotency key for one attempt.
-- KEYS[1] the record; ARGV: fingerprint, owner, lease ms, ttl ms, trip id.
-- Returns {'acquired', trip_id} | {'mismatch'} | {'busy'} | {'done', status, body}.
-- A pending record whose lease ran out (its gateway died mid-attempt) is
-- taken over with the same trip id, so a retry cannot create a second trip.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local raw = redis.call('GET', KEYS[1])
if not raw then
  local record = {state = 'pending', fp = ARGV[1], owner = ARGV[2],
    lease_until = now + tonumber(ARGV[3]), trip_id = ARGV[5]}
  redis.call('SET', KEYS[1], cjson.encode(record), 'PX', tonumber(ARGV[4]))
  return {'acquired', ARGV[5]}
end
local record = cjson.decode(raw)
if record.fp ~= ARGV[1] then
  return {'mismatch'}
end
if record.state == 'done' then
  return {'done', tostring(record.status), record.body}
end
if tonumber(record.lease_until) > now then
  return {'busy'}
end
record.owner = ARGV[2]
record.lease_until = now + tonumber(ARGV[3])
redis.call('SET', KEYS[1], cjson.encode(record), 'KEEPTTL')
return {'acquired', record.trip_id}
