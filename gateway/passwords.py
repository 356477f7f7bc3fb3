"""Password policy: a minimum length and no password from the list of the
30,000 most common ones (the list zxcvbn ships, a kept package). Checked at
sign-up, at a password change and for the ops account at start."""

from __future__ import annotations

from functools import lru_cache

MIN_LENGTH = 8
# The ops account guards every trip and driver: longer, and never a placeholder.
OPS_MIN_LENGTH = 16
# Parts of the placeholders deployment files and examples carry.
PLACEHOLDERS = (
    "replace", "change-me", "change_me", "changeme", "choose", "placeholder", "example",
    "your-", "xxxx", "todo",
)


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def problems(password: str, user_name: str = "", min_length: int = MIN_LENGTH) -> str | None:
    """Why a password is refused, as a field message, or None."""
    if len(password) < min_length:
        return f"must be at least {min_length} characters long"
    lowered = password.lower()
    if lowered in common_passwords():
        return "is one of the most common passwords; choose another"
    if user_name and user_name.lower() == lowered:
        return "must not be the user name"
    return None


def ops_password_problem(password: str, user_name: str) -> str | None:
    """Why the configured ops password is refused (the gateway does not start)."""
    found = problems(password, user_name, OPS_MIN_LENGTH)
    if found:
        return found
    lowered = password.lower()
    if any(p in lowered for p in PLACEHOLDERS):
        return "looks like a placeholder (replace, change-me, choose, example...)"
    return None
