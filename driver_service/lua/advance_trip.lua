-- A step of the state machine's ADVANCES (assigned -> arrived, arrived ->
-- in_progress, ...), by the assigned driver: the status, the time of the step
-- in the document's `stamp` field and the step's event.
return advance_trip({trip = K.trip, trip_events = K.trip_events, counts = K.counts, events = K.events},
  A.driver_id, A.sources, A.target, A.stamp, A.event)
