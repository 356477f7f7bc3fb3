-- Take one place in a sliding-window limit, or say when one frees up, in
-- one step (concurrent requests cannot all pass a separate check).
-- K.window the window; A.window_ms the window in ms; A.limit the limit;
-- A.member a unique member. Returns 0 when taken, else the ms until a place
-- frees up.
local window = tonumber(A.window_ms)
local limit = tonumber(A.limit)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', K.window, '-inf', now - window)
local count = redis.call('ZCARD', K.window)
if count >= limit then
  local oldest = redis.call('ZRANGE', K.window, count - limit, count - limit, 'WITHSCORES')
  local wait_ms = tonumber(oldest[2]) + window - now
  if wait_ms < 1 then wait_ms = 1 end
  return wait_ms
end
redis.call('ZADD', K.window, now, A.member)
redis.call('PEXPIRE', K.window, window)
return 0
