"""Problem details (RFC 9457): how every error leaves the service, domain errors and framework errors alike, every
word of it in the answer's language."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from litestar import Request, Response
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field

from marketplace.compliance.schemas import FindingRead
from marketplace.errors import DomainError
from marketplace.kit.i18n import SOURCE_LANGUAGE, Language, Message, localize
from marketplace.web.language import language_of

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:marketplace:problem:"
# For answers that carry a secret (a token, a key shown once, a signed link): no cache keeps a copy.
NO_STORE = CacheControlHeader(no_store=True)

log = logging.getLogger("marketplace.errors")
# Problems answered, by type: what the HTTP status alone hides (a 502 `payment-gateway-error` is the payment
# gateway failing; a 409 `order-sold-out` is demand), for `GET /metrics`.
PROBLEMS = Counter("marketplace_problems", "Problems answered, by type", ["type"])


class ProblemError(BaseModel):
    """One invalid member of a request."""

    key: str | None = Field(None, description="the member's path, e.g. `computation.bounds`")
    message: str = Field(description="what is wrong with it, in the response's language")
    source: str | None = Field(None, description="where the member is: body, query, path, header, cookie")


class ProblemDetails(BaseModel):
    """RFC 9457 problem details, as every error response carries them: the five standard members, and the
    extension members some problem types add (each says which)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="`urn:marketplace:problem:<code>`; every code is listed in the README")
    title: str = Field(description="the problem type's title, in the response's language")
    status: int
    detail: str = Field(description="what happened this time, in the response's language")
    instance: str = Field(description="the path of the request")
    findings: list[FindingRead] | None = Field(
        None, description="trade-rejected, delivery-refused: the verdict's findings that failed or held it"
    )
    rulebook_fingerprint: str | None = Field(None, description="trade-rejected: the rulebook that judged")
    verdict_id: uuid.UUID | None = Field(None, description="delivery-refused: the stored verdict")
    order_id: uuid.UUID | None = Field(
        None, description="trade-rejected: the rejected attempt, kept for the auditors; payment problems: the order"
    )
    product_id: uuid.UUID | None = Field(None, description="order-sold-out, conflict: the product")
    licence_id: uuid.UUID | None = Field(None, description="delivery-refused: the licence")
    transfer_id: str | None = Field(None, description="ledger problems: the transfer")
    account_id: str | None = Field(None, description="ledger-overdraft: the account")
    current_status: str | None = Field(None, description="conflicts of state: the object's status now")
    order_status: str | None = Field(None, description="delivery-refused: the order's status")
    licence_status: str | None = Field(None, description="delivery-refused: the licence's status")
    acceptance_deadline: datetime | None = Field(None, description="order-invalid-transition: the window's end")
    errors: list[ProblemError] | None = Field(
        None,
        description="invalid-request, fields-required: each invalid field; privacy-terms-inconsistent: each "
        "inconsistency",
    )
    field: str | None = Field(None, description="unprocessable: the field at fault")
    line: int | None = Field(None, description="a refused sample or dataset file: the line reading stopped at")
    sample_error: str | None = Field(None, description="a refused sample: the reader's code")
    dataset_error: str | None = Field(None, description="a refused dataset: the reader's code")
    query_error: str | None = Field(None, description="query-refused: why the data query was refused")
    retry_after: int | None = Field(
        None, description="too-many-requests, rate-limited, usage-cap-reached, certificate-unavailable: seconds"
    )
    sha256: str | None = Field(None, description="a dataset conflict: the digest at fault")
    registered_sha256: str | None = Field(None, description="a dataset conflict: the version's registered digest")


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


def problem_title_id(code: str) -> str:
    """The message id of a problem type's title in the catalogs."""
    return f"problem.{code}"


def problem_response(
    *,
    language: Language,
    status: int,
    code: str,
    title: str,
    detail: str,
    instance: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    """The problem, its title (given in English), its findings and its errors' messages, if any, in `language`;
    `detail` is in `language` already."""
    PROBLEMS.labels(code).inc()
    if "findings" in extra:
        extra["findings"] = [f.model_dump(mode="json") for f in FindingRead.all_of(extra["findings"], language)]
    if "errors" in extra:
        extra["errors"] = [_error_in(language, error) for error in extra["errors"]]
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + code,
        "title": localize(language, problem_title_id(code), title),
        "status": status,
        "detail": detail,
        "instance": instance,
        **extra,
    }
    return Response(content=body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def domain_error_handler(request: Request[Any, Any, Any], exc: DomainError) -> Response[dict[str, Any]]:
    return problem_of(exc, request)


def problem_of(exc: DomainError, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """A domain error as a response, for a handler that answers with it rather than raising it (the
    request's transaction then commits, e.g. a rejected order kept for the auditors)."""
    language = language_of(request.scope)
    return problem_response(
        language=language,
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.message.render(language),
        instance=request.url.path,
        headers=exc.headers,
        **exc.extra,
    )


# The problems the framework raises, by status: their code and English title.
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
_INVALID_REQUEST = ("invalid-request", "Request failed validation")
_HTTP_ERROR = ("http-error", "HTTP error")
_INTERNAL_ERROR = ("internal-error", "Internal server error")
FRAMEWORK_PROBLEM_TITLES = dict([*_HTTP_CODES.values(), _INVALID_REQUEST, _HTTP_ERROR, _INTERNAL_ERROR])
# What the framework's problems say in a language other than English: the framework's own sentence (its detail)
# cannot be translated word for word, so the answer in English keeps it and the others say this.
FRAMEWORK_DETAILS = {
    "bad-request": Message("request.malformed", "the request is malformed"),
    "not-authenticated": Message("request.not-authenticated", "the request carries no valid credentials"),
    "forbidden": Message("request.forbidden", "the credentials do not allow this request"),
    "not-found": Message("request.no-such-path", "no such path"),
    "method-not-allowed": Message("request.method-not-allowed", "this path does not take this method"),
    "not-acceptable": Message("request.not-acceptable", "no representation the request accepts can be given"),
    "conflict": Message("request.conflict", "the request conflicts with the current state"),
    "payload-too-large": Message("request.too-large", "the request body is too large"),
    "unsupported-media-type": Message("request.unsupported-media-type", "the request body's media type is not taken"),
    "too-many-requests": Message("request.too-many", "too many requests; try again later"),
    "http-error": Message("request.refused", "the request was refused"),
}
_INVALID_REQUEST_DETAIL = Message("request.invalid", "the request does not match the documented schema")
_INVALID_VALUE = Message("request.invalid-value", "this value does not match the documented schema")
_SERVER_ERROR_DETAIL = Message("request.server-error", "internal error")
_INTERNAL_ERROR_DETAIL = Message("request.unexpected-error", "an unexpected error occurred; it has been logged")
# The framework's problems, code -> status (http-error carries the status of what the framework refused).
FRAMEWORK_PROBLEM_STATUSES = {code: status for status, (code, _) in _HTTP_CODES.items()} | {
    _INVALID_REQUEST[0]: 400,
    _HTTP_ERROR[0]: 400,
    _INTERNAL_ERROR[0]: 500,
}


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    extra: dict[str, Any] = {}
    language = language_of(request.scope)
    if isinstance(exc, ValidationException):
        code, title = _INVALID_REQUEST
        if isinstance(exc.extra, list):
            extra["errors"] = [_public_validation_error(e) for e in exc.extra]
        detail = _INVALID_REQUEST_DETAIL.render(language)
    else:
        code, title = _HTTP_CODES.get(status, _HTTP_ERROR)
        if status >= 500:
            detail = _SERVER_ERROR_DETAIL.render(language)
        else:
            detail = exc.detail if language is SOURCE_LANGUAGE else FRAMEWORK_DETAILS[code].render(language)
    return problem_response(
        language=language,
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


def _error_in(language: Language, error: dict[str, Any]) -> dict[str, Any]:
    """An invalid member with its message in `language`: ours are messages; the framework's and the schema's
    own sentences are English, which another language replaces with a generic one (the key says which member)."""
    message = error.get("message")
    if isinstance(message, Message):
        return {**error, "message": message.render(language)}
    if language is SOURCE_LANGUAGE:
        return error
    return {**error, "message": _INVALID_VALUE.render(language)}


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        language=language_of(request.scope),
        status=HTTP_500_INTERNAL_SERVER_ERROR,
        code=_INTERNAL_ERROR[0],
        title=_INTERNAL_ERROR[1],
        detail=_INTERNAL_ERROR_DETAIL.render(language_of(request.scope)),
        instance=request.url.path,
    )


EXCEPTION_HANDLERS = {
    DomainError: domain_error_handler,
    HTTPException: http_exception_handler,
    Exception: internal_error_handler,
}
