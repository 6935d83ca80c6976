"""Domain errors: what a service raises when it refuses; `marketplace.web.problems` renders them as RFC 9457
problem details. No web framework here: services below the web layer raise these.

What an error says is a `Message` (id, English template, values): the edge renders it in the answer's language."""

from __future__ import annotations

from typing import Any, ClassVar

from marketplace.kit.i18n import Message


class DomainError(Exception):
    """Base of every error a service raises; `code` is the stable problem type."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, message: Message, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(str(message))
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    @property
    def detail(self) -> str:
        """What happened, in English."""
        return str(self.message)


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

    def __init__(self, message: Message | None = None, **extra: Any) -> None:
        message = message or Message("auth.credentials-missing", "missing or invalid credentials")
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="marketplace"'}, **extra)


class TooManyRequests(DomainError):
    status = 429
    code = "too-many-requests"
    title = "Too many requests"

    def __init__(self, message: Message, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)}, retry_after=retry_after)


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
            Message("request.fields-required", "these fields cannot be null: {fields}", fields=", ".join(fields)),
            errors=[
                {"key": field, "message": Message("request.field-not-nullable", "cannot be null"), "source": "body"}
                for field in fields
            ],
        )
