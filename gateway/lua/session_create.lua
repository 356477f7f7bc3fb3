-- Store a new session: K.session the session hash (named by the token's SHA-256).
-- ARGV: subject_id, role, region, user_name, sliding TTL ms, absolute limit ms.
-- Returns the expiry (epoch ms), from the server's clock like every check.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max_exp = now + tonumber(A.max_ms)
local exp = math.min(now + tonumber(A.ttl_ms), max_exp)
redis.call('HSET', K.session, 'subject_id', A.subject_id, 'role', A.role, 'region', A.region,
  'user_name', A.user_name, 'created_at', tostring(now), 'max_exp', tostring(max_exp))
redis.call('PEXPIREAT', K.session, exp)
return tostring(exp)
