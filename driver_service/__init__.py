"""driver_service: see docs/internals.md."""
