"""gateway: see docs/internals.md."""
