-- Sliding-window limit over a sorted set of failure times.
-- K.window the window; A.window_ms the window in ms; A.limit the limit.
-- Returns 0 when under the limit, else the ms until it will be.
local window = tonumber(A.window_ms)
local limit = tonumber(A.limit)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', K.window, '-inf', now - window)
local count = redis.call('ZCARD', K.window)
if count < limit then
  return 0
end
-- Blocked until enough failures leave the window to fall below the limit.
local oldest = redis.call('ZRANGE', K.window, count - limit, count - limit, 'WITHSCORES')
local wait_ms = tonumber(oldest[2]) + window - now
if wait_ms < 1 then wait_ms = 1 end
return wait_ms
