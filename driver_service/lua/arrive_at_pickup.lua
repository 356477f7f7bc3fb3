-- assigned -> arrived, by the assigned driver.
return advance_trip({trip = K.trip, trip_events = K.trip_events, counts = K.counts, events = K.events},
  A.driver_id, A.sources, A.target, 'arrived_at', 'trip.driver_arrived')
