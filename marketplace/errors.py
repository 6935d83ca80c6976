"""Domain errors and their RFC 9457 problem-details rendering."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from pydantic import BaseModel, ConfigDict

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:marketplace:problem:"

log = logging.getLogger("marketplace.errors")


class ProblemDetails(BaseModel):
    """RFC 9457 problem details, as every error response carries them."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str


_PROBLEM_DESCRIPTIONS = {
    400: "Malformed request or a body that does not match the schema",
    401: "Missing, invalid or expired credentials",
    403: "Authenticated, but not allowed to do this",
    404: "No such object, or one the caller may not see",
    409: "The object's current state does not allow this",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Understood, but refused by a business rule",
    429: "Too many requests; see Retry-After",
    502: "The payment gateway refused or failed the call; nothing was changed",
}


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problem responses a handler can give (400 applies to all)."""
    return {
        status: ResponseSpec(
            data_container=ProblemDetails,
            description=_PROBLEM_DESCRIPTIONS[status],
            media_type=PROBLEM_MEDIA_TYPE,
            generate_examples=False,
        )
        for status in sorted({400, *statuses})
    }


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


def problem_response(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    instance: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + code,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        **extra,
    }
    return Response(content=body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def domain_error_handler(request: Request[Any, Any, Any], exc: DomainError) -> Response[dict[str, Any]]:
    return problem_response(
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        instance=request.url.path,
        headers=exc.headers,
        **exc.extra,
    )


_HTTP_CODES = {
    400: ("bad-request", "Bad request"),
    401: ("not-authenticated", "Not authenticated"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    429: ("too-many-requests", "Too many requests"),
}


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    extra: dict[str, Any] = {}
    if isinstance(exc, ValidationException):
        code, title = "invalid-request", "Request failed validation"
        if isinstance(exc.extra, list):
            extra["errors"] = [_public_validation_error(e) for e in exc.extra]
        detail = "the request does not match the documented schema"
    else:
        code, title = _HTTP_CODES.get(status, ("http-error", "HTTP error"))
        detail = exc.detail if status < 500 else "internal error"
    return problem_response(
        status=status,
        code=code,
        title=title,
        detail=detail,
        instance=request.url.path,
        headers=dict(exc.headers or {}),
        **extra,
    )


def _public_validation_error(error: Any) -> dict[str, Any]:
    """Keep the key and message of a validation error, never the submitted value (may be personal data)."""
    if not isinstance(error, dict):
        return {"message": str(error)}
    return {k: error[k] for k in ("key", "message", "source") if k in error}


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        status=HTTP_500_INTERNAL_SERVER_ERROR,
        code="internal-error",
        title="Internal server error",
        detail="an unexpected error occurred; it has been logged",
        instance=request.url.path,
    )


EXCEPTION_HANDLERS = {
    DomainError: domain_error_handler,
    HTTPException: http_exception_handler,
    Exception: internal_error_handler,
}

__all__ = [
    "EXCEPTION_HANDLERS",
    "PROBLEM_MEDIA_TYPE",
    "Conflict",
    "DomainError",
    "Forbidden",
    "NotAuthenticated",
    "NotFound",
    "TooManyRequests",
    "Unprocessable",
]
