"""Domain errors: what a service raises when it refuses; `marketplace.web.problems` renders them as RFC 9457
problem details. No web framework here: services below the web layer raise these."""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """Base of every error a service raises; `code` is the stable problem type."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


class NotFound(DomainError):
    status = 404
    code = "not-found"
    title = "Not found"


class Conflict(DomainError):
    status = 409
    code = "conflict"
    title = "Conflict"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotAuthenticated(DomainError):
    status = 401
    code = "not-authenticated"
    title = "Not authenticated"

    def __init__(self, detail: str = "missing or invalid credentials", **extra: Any) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="marketplace"'}, **extra)


class TooManyRequests(DomainError):
    status = 429
    code = "too-many-requests"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)}, retry_after=retry_after)


class PayloadTooLarge(DomainError):
    status = 413
    code = "payload-too-large"
    title = "Request body too large"


class UnsupportedMediaType(DomainError):
    status = 415
    code = "unsupported-media-type"
    title = "Unsupported media type"


class Unprocessable(DomainError):
    status = 422
    code = "unprocessable"
    title = "Request cannot be processed"


class FieldsRequired(Unprocessable):
    """A partial update set fields the object cannot do without to null (or to what the whole object refuses):
    nothing is saved."""

    code = "fields-required"
    title = "Fields cannot be removed"

    def __init__(self, fields: list[str]) -> None:
        super().__init__(
            f"these fields cannot be null: {', '.join(fields)}",
            errors=[{"key": field, "message": "cannot be null", "source": "body"} for field in fields],
        )
