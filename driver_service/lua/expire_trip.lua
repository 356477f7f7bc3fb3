-- requested -> expired: nobody accepted within TRIP_EXPIRY_S. Claims its
-- deadline entry like expire_offer; an open offer closes with the trip.
-- KEYS: trip, trip_events, expiry, pending, pickups, demand, counts,
--       rider_active, offer_deadlines, events, active, [driver, geo, supply, offers]
-- ARGV[4]: trip_id, ARGV[5]: the offer's driver as read ('' none),
-- ARGV[6]: allowed sources, ARGV[7]: target
local trip_id = ARGV[4]
local score = redis.call('ZSCORE', KEYS[3], trip_id)
if not score then return reply_err('claimed', 'handled already') end
local now = now_ms()
if tonumber(score) > now then return reply_err('not_due', 'not due yet') end
local t = load_doc(KEYS[1])
if not t or not one_of(ARGV[6], t.status) then
  redis.call('ZREM', KEYS[3], trip_id)
  return {'ok', '', ''}
end
local holder = ''
if not is_null(t.offer) then holder = t.offer.driver_id end
if holder ~= ARGV[5] then return reply_err('retry', 'the offer changed') end
leave_queue(t, {pending = KEYS[4], pickups = KEYS[5], demand = KEYS[6], expiry = KEYS[3]})
local data = {}
if holder ~= '' then
  jset(KEYS[1], t, 'offer', cjson.null)
  redis.call('JSON.ARRAPPEND', KEYS[1], '$.refused', cjson.encode(holder))
  redis.call('ZREM', KEYS[9], trip_id)
  local dk = {driver = KEYS[12], geo = KEYS[13], supply = KEYS[14], offers = KEYS[15]}
  local d = load_doc(dk.driver)
  if holds_offer(d, trip_id) then
    clear_driver_offer(dk, d)
    sync_supply(dk, d)
  end
  data.driver_id = holder
end
set_status(KEYS[1], t, KEYS[7], ARGV[7], KEYS[11])
jset(KEYS[1], t, 'expired_at', iso(now))
release_rider(KEYS[8], trip_id)
emit(KEYS[10], KEYS[2], 'trip.expired', trip_id, holder, data, now)
return {'ok', '', 'trip.expired'}
