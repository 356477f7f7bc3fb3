-- arrived -> in_progress, by the assigned driver.
return advance_trip({trip = K.trip, trip_events = K.trip_events, counts = K.counts, events = K.events},
  A.driver_id, A.sources, A.target, 'started_at', 'trip.started')
