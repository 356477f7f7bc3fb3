-- Take one place in a sliding-window limit, or say when one frees up, in
-- one step (concurrent requests cannot all pass a separate check).
-- KEYS[1] the window; ARGV[1] the window in ms; ARGV[2] the limit;
-- ARGV[3] a unique member. Returns 0 when taken, else the ms until a place
-- frees up.
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
  local wait_ms = tonumber(oldest[2]) + window - now
  if wait_ms < 1 then wait_ms = 1 end
  return wait_ms
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return 0
