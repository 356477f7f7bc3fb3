-- Offer deadline: requested with an open offer -> requested, waiting. The
-- deadline entry is claimed here (ZSCORE due, ZREM), so sweepers in any
-- number of replicas expire each offer once.
-- KEYS: trip, trip_events, offer_deadlines, events, pickups,
--       [driver, geo, supply, offers]
-- ARGV[4]: trip_id, ARGV[5]: the offer's driver as read ('' none),
-- ARGV[6]: allowed sources
local trip_id = ARGV[4]
local driver_id = ARGV[5]
local score = redis.call('ZSCORE', KEYS[3], trip_id)
if not score then return reply_err('claimed', 'handled already') end
local now = now_ms()
if tonumber(score) > now then return reply_err('not_due', 'not due yet') end
local t = load_doc(KEYS[1])
local dk = nil
if driver_id ~= '' then
  dk = {driver = KEYS[6], geo = KEYS[7], supply = KEYS[8], offers = KEYS[9]}
end
if t and one_of(ARGV[6], t.status) and not is_null(t.offer) then
  if t.offer.driver_id ~= driver_id then return reply_err('retry', 'the offer changed') end
  if t.offer.expires_ms > now then return reply_err('not_due', 'not due yet') end
  redis.call('ZREM', KEYS[3], trip_id)
  jset(KEYS[1], t, 'offer', cjson.null)
  redis.call('JSON.ARRAPPEND', KEYS[1], '$.refused', cjson.encode(driver_id))
  wait_again(t, KEYS[5])
  local d = load_doc(dk.driver)
  if holds_offer(d, trip_id) then
    clear_driver_offer(dk, d)
    sync_supply(dk, d)
  end
  emit(KEYS[4], KEYS[2], 'trip.offer_expired', trip_id, driver_id, {driver_id = driver_id}, now)
  return {'ok', '', 'trip.offer_expired'}
end
-- A stale deadline: the trip moved on. Free a driver still holding the offer.
redis.call('ZREM', KEYS[3], trip_id)
if dk then
  local d = load_doc(dk.driver)
  if holds_offer(d, trip_id) then
    clear_driver_offer(dk, d)
    sync_supply(dk, d)
  end
end
return {'ok', '', ''}
