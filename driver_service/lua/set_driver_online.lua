-- offline -> online; available at once if located and free.
local dk = {driver = K.driver, geo = K.geo, supply = K.supply, offers = K.offers}
local d = load_doc(K.driver)
if not d then return reply_err('not_found', 'no such driver') end
if d.status == 'online' then
  return {'ok', redis.call('JSON.GET', K.driver), ''}
end
local now = now_ms()
jset(K.driver, d, 'status', 'online')
jset(K.driver, d, 'online_since', iso(now))
redis.call('HINCRBY', K.online_counts, d.product, 1)
redis.call('ZADD', K.online_drivers, now, d.id)
local available = sync_supply(dk, d)
emit(K.events, nil, 'driver.online', '', d.id, {product = d.product, available = available}, now)
return {'ok', redis.call('JSON.GET', K.driver), 'driver.online'}
