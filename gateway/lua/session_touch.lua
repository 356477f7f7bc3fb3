-- Read a session, slide its expiry and take a token from its rate-limit
-- bucket, in one step (one round trip per authenticated request).
-- KEYS[1] the session hash; ARGV[1] the sliding TTL in ms; ARGV[2] the
-- bucket's refill rate per second (0 or absent: no limit), ARGV[3] its
-- capacity (the burst). The expiry never passes the absolute limit `max_exp`
-- set at sign-in. The bucket lives in the session's own hash (fields
-- rl_tokens, rl_ts): one key, so one slot, and it ends with the session.
-- Returns nil, or {subject_id, role, region, user_name, expires_at_ms,
-- ms until a token is available: 0 when this request took one}.
local fields = redis.call('HMGET', KEYS[1], 'subject_id', 'role', 'region', 'user_name',
  'max_exp', 'rl_tokens', 'rl_ts')
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
local wait_ms = 0
local rate = tonumber(ARGV[2] or '0') or 0
if rate > 0 then
  local capacity = tonumber(ARGV[3])
  local tokens = tonumber(fields[6])
  local ts = tonumber(fields[7])
  if tokens == nil or ts == nil then
    tokens = capacity
    ts = now
  end
  if now > ts then
    tokens = math.min(capacity, tokens + (now - ts) * rate / 1000)
    ts = now
  end
  if tokens >= 1 then
    tokens = tokens - 1
  else
    wait_ms = math.max(1, math.ceil((1 - tokens) * 1000 / rate))
  end
  redis.call('HSET', KEYS[1], 'rl_tokens', tostring(tokens), 'rl_ts', tostring(ts))
end
return {fields[1], fields[2], fields[3] or '', fields[4] or '', tostring(exp), wait_ms}
