-- online -> offline. 409 while on a trip; an open offer is declined first.
-- KEYS: driver, geo, supply, offers, online_counts, events, offer_deadlines,
--       pickups, online_drivers, [offer_trip, offer_trip_events], [active_trip]
-- ARGV[4]: the offer's trip id as read ('' none), ARGV[5]: the active trip
-- id as read ('' none), ARGV[6]: statuses in which a driver holds a trip
local dk = {driver = KEYS[1], geo = KEYS[2], supply = KEYS[3], offers = KEYS[4]}
local d = load_doc(KEYS[1])
if not d then return reply_err('not_found', 'no such driver') end
local offer_trip = ''
if not is_null(d.offer) then offer_trip = d.offer.trip_id end
local active = ''
if not is_null(d.trip_id) then active = d.trip_id end
if offer_trip ~= ARGV[4] or active ~= ARGV[5] then
  return reply_err('retry', 'the driver changed meanwhile')
end
if d.status == 'offline' then
  return {'ok', redis.call('JSON.GET', KEYS[1]), ''}
end
local now = now_ms()
local types = {}
if active ~= '' then
  local t = load_doc(KEYS[#KEYS])
  if t and t.driver_id == d.id and one_of(ARGV[6], t.status) then
    return reply_err('conflict', 'a driver on a trip (' .. t.status .. ') cannot go offline')
  end
  -- The trip ended (cancelled by the rider) before the release reached us.
  jset(KEYS[1], d, 'trip_id', cjson.null)
end
if offer_trip ~= '' then
  local t = load_doc(KEYS[10])
  clear_driver_offer(dk, d)
  if trip_offered_to(t, d.id) then
    jset(KEYS[10], t, 'offer', cjson.null)
    redis.call('JSON.ARRAPPEND', KEYS[10], '$.refused', cjson.encode(d.id))
    redis.call('ZREM', KEYS[7], t.id)
    wait_again(t, KEYS[8])
    emit(KEYS[6], KEYS[11], 'trip.offer_declined', t.id, d.id,
      {driver_id = d.id, reason = 'offline'}, now)
    table.insert(types, 'trip.offer_declined')
  end
end
jset(KEYS[1], d, 'status', 'offline')
jset(KEYS[1], d, 'online_since', nil)
hdecr(KEYS[5], d.product)
redis.call('ZREM', KEYS[9], d.id)
sync_supply(dk, d)
emit(KEYS[6], nil, 'driver.offline', '', d.id, {product = d.product}, now)
table.insert(types, 'driver.offline')
return {'ok', redis.call('JSON.GET', KEYS[1]), table.concat(types, ',')}
