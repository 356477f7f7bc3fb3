"""The public routes, declared on one `Api` table (see gateway/api.py)."""

from __future__ import annotations

from ..api import Api

api = Api()

# Importing the modules registers their routes on `api`, in this order.
from . import accounts, rider, driver, ops, history, explorer, vocabulary  # noqa: E402,F401
