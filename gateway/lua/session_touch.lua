-- Read a session, slide its expiry and take tokens from its rate-limit
-- bucket, in one step (one round trip per authenticated request).
-- K.session the session hash; A.ttl_ms the sliding TTL in ms; A.rate the
-- bucket's refill rate per second (0 or absent: no limit), A.burst its
-- capacity (the burst), A.take how many tokens to take at most (a gateway
-- keeps the ones its request did not need, for the next requests of the
-- session), A.min_move_ms the least move of the expiry worth a write (0: always).
-- The expiry never passes the absolute limit `max_exp` set at sign-in. The
-- bucket lives in the session's own hash (fields rl_tokens, rl_ts): one key,
-- so one slot, and it ends with the session. A call that neither moves the
-- expiry nor takes tokens writes nothing (no AOF write, no fsync to wait for).
-- Returns nil, or {subject_id, role, region, user_name, expires_at_ms,
-- tokens taken, ms until a token is available when none was}.
local fields = redis.call('HMGET', K.session, 'subject_id', 'role', 'region', 'user_name',
  'max_exp', 'rl_tokens', 'rl_ts')
if not fields[1] then
  return nil
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max_exp = tonumber(fields[5]) or 0
if now >= max_exp then
  redis.call('DEL', K.session)
  return nil
end
local exp = math.min(now + tonumber(A.ttl_ms), max_exp)
local min_move = tonumber(A.min_move_ms or '0') or 0
local ttl = redis.call('PTTL', K.session)
if min_move <= 0 or ttl < 0 or exp - (now + ttl) >= min_move then
  redis.call('PEXPIREAT', K.session, exp)
else
  exp = now + ttl
end
local taken = 0
local wait_ms = 0
local rate = tonumber(A.rate or '0') or 0
local want = tonumber(A.take or '1') or 1
if rate > 0 and want > 0 then
  local capacity = tonumber(A.burst)
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
  taken = math.min(want, math.floor(tokens))
  if taken >= 1 then
    tokens = tokens - taken
  else
    taken = 0
    wait_ms = math.max(1, math.ceil((1 - tokens) * 1000 / rate))
  end
  redis.call('HSET', K.session, 'rl_tokens', tostring(tokens), 'rl_ts', tostring(ts))
elseif rate <= 0 then
  taken = 1
end
return {fields[1], fields[2], fields[3] or '', fields[4] or '', tostring(exp), taken, wait_ms}
