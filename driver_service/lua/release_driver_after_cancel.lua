-- After a rider cancelled: the driver who held the offer or the trip is
-- available again. Idempotent: only what still points at the dead trip is
-- cleared, so a redelivered event changes nothing twice.
local dk = {driver = K.driver, geo = K.geo, supply = K.supply, offers = K.offers}
local trip_id = A.trip_id
local d = load_doc(K.driver)
if not d then return {'ok', '', '', '0'} end
local t = load_doc(K.trip)
local changed = false
if holds_offer(d, trip_id) and not trip_offered_to(t, d.id) then
  clear_driver_offer(dk, d)
  if not t or t.status ~= 'requested' or is_null(t.offer) then
    redis.call('ZREM', K.offer_deadlines, trip_id)
  end
  changed = true
end
if d.trip_id == trip_id and not (t and t.driver_id == d.id and one_of(A.holding, t.status)) then
  jset(K.driver, d, 'trip_id', cjson.null)
  changed = true
end
local available = sync_supply(dk, d)
local flag = '0'
if changed and available then flag = '1' end
return {'ok', '', '', flag}
