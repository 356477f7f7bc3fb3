-- assigned -> arrived, by the assigned driver.
-- KEYS: trip, trip_events, counts, events
-- ARGV[4]: driver_id, ARGV[5]: allowed sources, ARGV[6]: target
return advance_trip({trip = KEYS[1], trip_events = KEYS[2], counts = KEYS[3], events = KEYS[4]},
  ARGV[4], ARGV[5], ARGV[6], 'arrived_at', 'trip.driver_arrived')
