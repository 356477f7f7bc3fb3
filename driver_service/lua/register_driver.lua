-- A new driver, offline.
-- KEYS: driver, events. ARGV[4]: the document without server times.
local existing = redis.call('JSON.GET', KEYS[1])
if existing then
  return {'exists', existing, ''}
end
local d = cjson.decode(ARGV[4])
local now = now_ms()
redis.call('JSON.SET', KEYS[1], '$', ARGV[4])
jset(KEYS[1], d, 'registered_at', iso(now))
emit(KEYS[2], nil, 'driver.registered', '', d.id, {product = d.product}, now)
return {'ok', redis.call('JSON.GET', KEYS[1]), 'driver.registered'}
