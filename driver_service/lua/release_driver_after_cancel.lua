-- After a rider cancelled: the driver who held the offer or the trip is
-- available again. Idempotent: only what still points at the dead trip is
-- cleared, so a redelivered event changes nothing twice.
-- KEYS: driver, geo, supply, offers, offer_deadlines, trip
-- ARGV[4]: trip_id, ARGV[5]: statuses in which a driver holds a trip
local dk = {driver = KEYS[1], geo = KEYS[2], supply = KEYS[3], offers = KEYS[4]}
local trip_id = ARGV[4]
local d = load_doc(KEYS[1])
if not d then return {'ok', '', '', '0'} end
local t = load_doc(KEYS[6])
local changed = false
if holds_offer(d, trip_id) and not trip_offered_to(t, d.id) then
  clear_driver_offer(dk, d)
  if not t or t.status ~= 'requested' or is_null(t.offer) then
    redis.call('ZREM', KEYS[5], trip_id)
  end
  changed = true
end
if d.trip_id == trip_id and not (t and t.driver_id == d.id and one_of(ARGV[5], t.status)) then
  jset(KEYS[1], d, 'trip_id', cjson.null)
  changed = true
end
local available = sync_supply(dk, d)
local flag = '0'
if changed and available then flag = '1' end
return {'ok', '', '', flag}
