"""Shared building blocks of the ride-hailing services."""
