-- A new driver, offline.
local existing = redis.call('JSON.GET', K.driver)
if existing then
  return {'exists', existing, ''}
end
local d = cjson.decode(A.doc)
local now = now_ms()
redis.call('JSON.SET', K.driver, '$', A.doc)
jset(K.driver, d, 'registered_at', iso(now))
emit(K.events, nil, 'driver.registered', '', d.id, {product = d.product}, now)
return {'ok', redis.call('JSON.GET', K.driver), 'driver.registered'}
