-- The cold store of finished trips (trip_service's own database).
-- A trip is copied here by the archiver HOT_RETENTION_S after it ended, with
-- its timeline (each event with its consumer-group deliveries) and rating,
-- in one transaction; copies are upserts by trip id and event id.

CREATE TABLE trips (
    id            text PRIMARY KEY,
    region        text NOT NULL,
    rider_id      text NOT NULL,
    driver_id     text,
    product       text NOT NULL,
    status        text NOT NULL CHECK (status IN ('completed', 'cancelled', 'expired')),
    cancelled_by  text,
    requested_ms  bigint NOT NULL,
    requested_at  timestamptz NOT NULL,
    assigned_at   timestamptz,
    assigned_ms   bigint,
    ended_at      timestamptz NOT NULL,
    fare_amount   numeric(12, 2),
    currency      text,
    stars         smallint,
    doc           jsonb NOT NULL,
    archived_at   timestamptz NOT NULL DEFAULT now()
);

-- History pages, newest first, in the order of the hot indexes: a rider's
-- by (requested_ms, id), a driver's by (assigned_ms, id).
CREATE INDEX trips_rider_history ON trips (rider_id, requested_ms DESC, id DESC);
CREATE INDEX trips_driver_history ON trips (driver_id, assigned_ms DESC, id DESC)
    WHERE driver_id IS NOT NULL;
-- Analytics by day.
CREATE INDEX trips_requested_at ON trips (requested_at);

CREATE TABLE trip_events (
    event_id     text PRIMARY KEY,
    trip_id      text NOT NULL REFERENCES trips (id) ON DELETE CASCADE,
    seq          integer NOT NULL,
    stream_id    text NOT NULL,
    type         text NOT NULL,
    occurred_at  timestamptz NOT NULL,
    envelope     jsonb NOT NULL,
    deliveries   jsonb NOT NULL DEFAULT '[]'
);

CREATE INDEX trip_events_by_trip ON trip_events (trip_id, seq);
