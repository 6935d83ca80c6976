"""What every console page shares: the signed-in administrator (a session cookie), the page's language and
words, rendering a template, and refusals shown as pages rather than problem documents."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import quote

from litestar import Request, Response
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.response import Redirect, Template
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.principal import Principal
from marketplace.accounts.sessions import ConsoleSessions
from marketplace.config import Settings
from marketplace.console.language import console_language, translator
from marketplace.console.queries import ConsoleQueries
from marketplace.errors import DomainError
from marketplace.kit.i18n import Language, localize
from marketplace.kit.money import major_units
from marketplace.web.problems import problem_title_id

FormModel = TypeVar("FormModel", bound=BaseModel)
PREFIX = "/console"
SESSION_COOKIE = "console_session"
SIGN_IN = f"{PREFIX}/sign-in"


class NotSignedIn(Exception):
    """No live console session: the page sends the browser to the sign-in page."""


def session_token(request: Request[Any, Any, Any]) -> str | None:
    return request.cookies.get(SESSION_COOKIE) or None


async def provide_console_admin(
    request: Request[Any, Any, Any], console_sessions: NamedDependency[ConsoleSessions]
) -> Principal:
    """The administrator whose live session the request's cookie carries."""
    token = session_token(request)
    principal = await console_sessions.resolve(token) if token else None
    if principal is None:
        raise NotSignedIn()
    return principal


def provide_page_language(request: Request[Any, Any, Any]) -> Language:
    return console_language(request)


def provide_queries(db_session: NamedDependency[AsyncSession]) -> ConsoleQueries:
    return ConsoleQueries(db_session)


SIGNED_IN = {
    "admin": Provide(provide_console_admin),
    "page_language": Provide(provide_page_language, sync_to_thread=False),
    "queries": Provide(provide_queries, sync_to_thread=False),
}
Queries = NamedDependency[ConsoleQueries]
PageLanguage = NamedDependency[Language]
Admin = NamedDependency[Principal]


def secure_cookies(request: Request[Any, Any, Any]) -> bool:
    settings: Settings = request.app.state.runtime.settings
    return settings.console_secure_cookie == "always" or request.url.scheme == "https"


def page(
    request: Request[Any, Any, Any],
    name: str,
    language: Language,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **values: Any,
) -> Template:
    """The template `name` with the words of `language`, the request and the values."""
    context = {
        "t": translator(language),
        "language": language,
        "path": request.url.path,
        "here": _here(request),
        "signed_in": session_token(request) is not None and name != "sign_in.html",
        **values,
    }
    headers = {"Content-Language": language.value, **(headers or {})}
    return Template(template_name=name, context=context, status_code=status_code, headers=headers)


def money(amount_minor: int, currency: str) -> str:
    """An amount as a page shows it: the currency's code, then its major units ("CNY 1,234.50")."""
    return f"{currency} {major_units(amount_minor, currency)}"


def _here(request: Request[Any, Any, Any]) -> str:
    """Where the language switch brings the browser back to: this page, or after a form (a POST's answer)
    the page the form is on."""
    if request.method == "GET":
        return request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return request.url.path.rsplit("/", 1)[0]


def local_target(target: str | None, fallback: str = PREFIX) -> str:
    """Where to send the browser after a form: a console path only (never another site: an open redirect)."""
    if target and target.startswith(f"{PREFIX}") and not target.startswith("//") and "\\" not in target:
        return target
    return fallback


def parse_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValidationException(detail="not an id") from None


def form_of(schema: type[FormModel], data: Mapping[str, str]) -> FormModel:
    """A posted form read as the API's request body of the same decision (the same constraints: a reason is
    required); the CSRF token is the middleware's, not the schema's."""
    try:
        return schema.model_validate({name: value for name, value in data.items() if name != "_csrf_token"})
    except PydanticValidationError as error:
        fields = ", ".join(str(detail["loc"][0]) for detail in error.errors() if detail["loc"])
        raise ValidationException(detail=f"check these fields: {fields}") from None


def not_signed_in(request: Request[Any, Any, Any], exc: NotSignedIn) -> Response[Any]:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return Redirect(f"{SIGN_IN}?next={quote(target, safe='')}", status_code=303)


def refused_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A refusal as a page in the console's language: the problem's title and what happened."""
    language = console_language(request)
    words = translator(language)
    if isinstance(exc, DomainError):
        status, headers, detail = exc.status, exc.headers, exc.detail
        title = localize(language, problem_title_id(exc.code), exc.title)
    elif isinstance(exc, HTTPException):
        status, headers, title = exc.status_code, dict(exc.headers or {}), words("error.refused")
        # the console's own 403s are domain errors: the framework's is the CSRF check
        detail = words("error.csrf") if status == 403 else str(exc.detail)
    else:
        raise exc
    return page(request, "refused.html", language, status_code=status, headers=headers, title=title, detail=detail)


EXCEPTION_HANDLERS: dict[type[Exception], Any] = {
    NotSignedIn: not_signed_in,
    DomainError: refused_page,
    HTTPException: refused_page,
}
