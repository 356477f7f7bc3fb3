-- Store a new session: KEYS[1] the session hash (named by the token's SHA-256).
-- ARGV: subject_id, role, region, user_name, sliding TTL ms, absolute limit ms.
-- Returns the expiry (epoch ms), from the server's clock like every check.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max_exp = now + tonumber(ARGV[6])
local exp = math.min(now + tonumber(ARGV[5]), max_exp)
redis.call('HSET', KEYS[1], 'subject_id', ARGV[1], 'role', ARGV[2], 'region', ARGV[3],
  'user_name', ARGV[4], 'created_at', tostring(now), 'max_exp', tostring(max_exp))
redis.call('PEXPIREAT', KEYS[1], exp)
return tostring(exp)
