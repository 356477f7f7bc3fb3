-- requested -> expired: nobody accepted within TRIP_EXPIRY_S. Claims its
-- deadline entry like expire_offer; an open offer closes with the trip.
local trip_id = A.trip_id
local score = redis.call('ZSCORE', K.expiry, trip_id)
if not score then return reply_err('claimed', 'handled already') end
local now = now_ms()
if tonumber(score) > now then return reply_err('not_due', 'not due yet') end
local t = load_doc(K.trip)
if not t or not one_of(A.sources, t.status) then
  redis.call('ZREM', K.expiry, trip_id)
  return {'ok', '', ''}
end
local holder = ''
if not is_null(t.offer) then holder = t.offer.driver_id end
if holder ~= A.holder then return reply_err('retry', 'the offer changed') end
leave_queue(K.trip, t, {pending = K.pending, pickups = K.pickups, demand = K.demand, expiry = K.expiry})
local data = {}
if holder ~= '' then
  jset(K.trip, t, 'offer', cjson.null)
  refuse(K.trip, t, holder)
  redis.call('ZREM', K.offer_deadlines, trip_id)
  local dk = {driver = K.driver, geo = K.geo, supply = K.supply, offers = K.offers}
  local d = load_doc(dk.driver)
  if holds_offer(d, trip_id) then
    clear_driver_offer(dk, d)
    sync_supply(dk, d)
  end
  data.driver_id = holder
end
set_status(K.trip, t, K.counts, A.target, K.active)
jset(K.trip, t, 'expired_at', iso(now))
release_rider(K.rider_active, trip_id)
emit(K.events, K.trip_events, 'trip.expired', trip_id, holder, data, now)
return {'ok', '', 'trip.expired'}
