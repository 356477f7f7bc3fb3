-- offline -> online; available at once if located and free.
-- KEYS: driver, geo, supply, offers, online_counts, events, online_drivers
local dk = {driver = KEYS[1], geo = KEYS[2], supply = KEYS[3], offers = KEYS[4]}
local d = load_doc(KEYS[1])
if not d then return reply_err('not_found', 'no such driver') end
if d.status == 'online' then
  return {'ok', redis.call('JSON.GET', KEYS[1]), ''}
end
local now = now_ms()
jset(KEYS[1], d, 'status', 'online')
jset(KEYS[1], d, 'online_since', iso(now))
redis.call('HINCRBY', KEYS[5], d.product, 1)
redis.call('ZADD', KEYS[7], now, d.id)
local available = sync_supply(dk, d)
emit(KEYS[6], nil, 'driver.online', '', d.id, {product = d.product, available = available}, now)
return {'ok', redis.call('JSON.GET', KEYS[1]), 'driver.online'}
