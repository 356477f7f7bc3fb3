-- Sliding-window limit over a sorted set of failure times.
-- KEYS[1] the window; ARGV[1] the window in ms; ARGV[2] the limit.
-- Returns 0 when under the limit, else the ms until it will be.
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  return 0
end
-- Blocked until enough failures leave the window to fall below the limit.
local oldest = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
local wait_ms = tonumber(oldest[2]) + window - now
if wait_ms < 1 then wait_ms = 1 end
return wait_ms
