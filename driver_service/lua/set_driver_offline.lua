-- online -> offline. 409 while on a trip; an open offer is declined first.
local dk = {driver = K.driver, geo = K.geo, supply = K.supply, offers = K.offers}
local d = load_doc(K.driver)
if not d then return reply_err('not_found', 'no such driver') end
local offer_trip = ''
if not is_null(d.offer) then offer_trip = d.offer.trip_id end
local active = ''
if not is_null(d.trip_id) then active = d.trip_id end
if offer_trip ~= A.offer_trip_id or active ~= A.active_trip_id then
  return reply_err('retry', 'the driver changed meanwhile')
end
if d.status == 'offline' then
  return {'ok', redis.call('JSON.GET', K.driver), ''}
end
local now = now_ms()
local types = {}
if active ~= '' then
  local t = load_doc(K.active_trip)
  if t and t.driver_id == d.id and one_of(A.holding, t.status) then
    return reply_err('conflict', 'a driver on a trip (' .. t.status .. ') cannot go offline')
  end
  -- The trip ended (cancelled by the rider) before the release reached us.
  jset(K.driver, d, 'trip_id', cjson.null)
end
if offer_trip ~= '' then
  local t = load_doc(K.offer_trip)
  clear_driver_offer(dk, d)
  if trip_offered_to(t, d.id) then
    jset(K.offer_trip, t, 'offer', cjson.null)
    refuse(K.offer_trip, t, d.id)
    redis.call('ZREM', K.offer_deadlines, t.id)
    wait_again(t, K.pickups)
    emit(K.events, K.offer_trip_events, 'trip.offer_declined', t.id, d.id,
      {driver_id = d.id, reason = 'offline'}, now)
    table.insert(types, 'trip.offer_declined')
  end
end
jset(K.driver, d, 'status', 'offline')
jset(K.driver, d, 'online_since', nil)
hdecr(K.online_counts, d.product)
redis.call('ZREM', K.online_drivers, d.id)
sync_supply(dk, d)
emit(K.events, nil, 'driver.offline', '', d.id, {product = d.product}, now)
table.insert(types, 'driver.offline')
return {'ok', redis.call('JSON.GET', K.driver), table.concat(types, ',')}
