-- A new driver, offline.
local existing = redis.call('JSON.GET', K.driver)
if existing then
  return {'exists', existing, ''}
end
local d = cjson.decode(A.doc)
local now = now_ms()
redis.call('JSON.SET', K.driver, '$', A.doc)
-- The profile (driver_service/document.py, PROFILE) is JSON text: the
-- registration time goes into it (an older caller's document holds the
-- fields at the top, and so does its time).
if type(d.profile) == 'string' then
  local profile = cjson.decode(d.profile)
  profile.registered_at = iso(now)
  jset(K.driver, d, 'profile', cjson.encode(profile))
else
  jset(K.driver, d, 'registered_at', iso(now))
end
emit(K.events, nil, 'driver.registered', '', d.id, {product = d.product}, now)
return {'ok', redis.call('JSON.GET', K.driver), 'driver.registered'}
