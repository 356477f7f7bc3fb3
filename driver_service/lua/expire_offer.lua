-- Offer deadline: requested with an open offer -> requested, waiting. The
-- deadline entry is claimed here (ZSCORE due, ZREM), so sweepers in any
-- number of replicas expire each offer once.
local trip_id = A.trip_id
local driver_id = A.holder
local score = redis.call('ZSCORE', K.offer_deadlines, trip_id)
if not score then return reply_err('claimed', 'handled already') end
local now = now_ms()
if tonumber(score) > now then return reply_err('not_due', 'not due yet') end
local t = load_doc(K.trip)
local dk = nil
if driver_id ~= '' then
  dk = {driver = K.driver, geo = K.geo, supply = K.supply, offers = K.offers}
end
if t and one_of(A.sources, t.status) and not is_null(t.offer) then
  if t.offer.driver_id ~= driver_id then return reply_err('retry', 'the offer changed') end
  if t.offer.expires_ms > now then return reply_err('not_due', 'not due yet') end
  redis.call('ZREM', K.offer_deadlines, trip_id)
  jset(K.trip, t, 'offer', cjson.null)
  refuse(K.trip, t, driver_id)
  wait_again(t, K.pickups)
  local d = load_doc(dk.driver)
  if holds_offer(d, trip_id) then
    clear_driver_offer(dk, d)
    sync_supply(dk, d)
  end
  emit(K.events, K.trip_events, 'trip.offer_expired', trip_id, driver_id, {driver_id = driver_id}, now)
  return {'ok', '', 'trip.offer_expired'}
end
-- A stale deadline: the trip moved on. Free a driver still holding the offer.
redis.call('ZREM', K.offer_deadlines, trip_id)
if dk then
  local d = load_doc(dk.driver)
  if holds_offer(d, trip_id) then
    clear_driver_offer(dk, d)
    sync_supply(dk, d)
  end
end
return {'ok', '', ''}
