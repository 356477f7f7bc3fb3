"""trip_service: see docs/internals.md."""
