-- Read a session and slide its expiry, in one step.
-- KEYS[1] the session hash; ARGV[1] the sliding TTL in ms.
-- The expiry never passes the absolute limit `max_exp` set at sign-in.
-- Returns {subject_id, role, region, user_name, expires_at_ms} or nil.
local fields = redis.call('HMGET', KEYS[1], 'subject_id', 'role', 'region', 'user_name', 'max_exp')
if not fields[1] then
  return nil
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max_exp = tonumber(fields[5]) or 0
if now >= max_exp then
  redis.call('DEL', KEYS[1])
  return nil
end
local exp = math.min(now + tonumber(ARGV[1]), max_exp)
redis.call('PEXPIREAT', KEYS[1], exp)
return {fields[1], fields[2], fields[3] or '', fields[4] or '', tostring(exp)}
