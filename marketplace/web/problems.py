"""Problem details (RFC 9457): how every error leaves the service, domain errors and framework errors alike."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from pydantic import BaseModel, ConfigDict

from marketplace.errors import DomainError

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:marketplace:problem:"
# For answers that carry a secret (a token, a key shown once, a signed link): no cache keeps a copy.
NO_STORE = CacheControlHeader(no_store=True)

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
    return problem_of(exc, request.url.path)


def problem_of(exc: DomainError, instance: str) -> Response[dict[str, Any]]:
    """A domain error as a response, for a handler that answers with it rather than raising it (the
    request's transaction then commits, e.g. a rejected order kept for the auditors)."""
    return problem_response(
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        instance=instance,
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
