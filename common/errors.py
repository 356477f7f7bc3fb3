"""Domain errors. Domain code raises these; one middleware maps them to
problem+json responses. They know nothing of HTTP beyond a status hint."""

from __future__ import annotations


class AppError(Exception):
    status = 500
    title = "Internal error"
    # Every problem names one of the project's own types (docs/api.md), never
    # about:blank.
    type_ = "/problems/internal"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[dict] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra or {}


class BadRequest(AppError):
    status, title, type_ = 400, "Bad request", "/problems/bad-request"


class Unauthorized(AppError):
    status, title, type_ = 401, "Unauthorized", "/problems/unauthorized"


class Forbidden(AppError):
    status, title, type_ = 403, "Forbidden", "/problems/forbidden"


class NotFound(AppError):
    status, title, type_ = 404, "Not found", "/problems/not-found"


class MethodNotAllowed(AppError):
    status, title, type_ = 405, "Method not allowed", "/problems/method-not-allowed"


class Conflict(AppError):
    status, title, type_ = 409, "Conflict", "/problems/conflict"


class PayloadTooLarge(AppError):
    status, title, type_ = 413, "Payload too large", "/problems/payload-too-large"


class UnsupportedMediaType(AppError):
    status, title, type_ = 415, "Unsupported media type", "/problems/unsupported-media-type"


class Invalid(AppError):
    status, title, type_ = 422, "Validation failed", "/problems/validation"


class TooManyRequests(AppError):
    status, title, type_ = 429, "Too many requests", "/problems/rate-limited"


class Unavailable(AppError):
    status, title, type_ = 503, "Service unavailable", "/problems/unavailable"


class Timeout(AppError):
    status, title, type_ = 504, "Upstream timeout", "/problems/timeout"


_BY_STATUS = {
    cls.status: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        Invalid,
        TooManyRequests,
        Unavailable,
        Timeout,
    )
}


def error_for_status(status: int) -> type[AppError]:
    return _BY_STATUS.get(status, AppError)


class RatingWindowClosed(Conflict):
    """A trip that is already cold (or past HOT_RETENTION_S) can no longer be rated."""

    title, type_ = "Rating window closed", "/problems/rating-window-closed"


class StorageFull(Unavailable):
    """Redis answered OOM (maxmemory with noeviction): nothing was written."""

    title, type_ = "Storage full", "/problems/storage-full"
