-- Record one failure: K.window the window; A.window_ms the window in ms;
-- A.member a unique member. Returns the count within the window.
local window = tonumber(A.window_ms)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', K.window, '-inf', now - window)
redis.call('ZADD', K.window, now, A.member)
redis.call('PEXPIRE', K.window, window)
return redis.call('ZCARD', K.window)
