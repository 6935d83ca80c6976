"""Signing in and out of the console with the accounts of the API (the same passwords, the same throttle of
failed sign-ins), administrators only, and choosing the console's language."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery
from litestar.response import Redirect, Template

from marketplace.accounts.auth import AuthService
from marketplace.accounts.sessions import ConsoleSessions
from marketplace.config import Settings
from marketplace.console.language import LANGUAGE_COOKIE, LANGUAGE_COOKIE_SECONDS
from marketplace.console.pages import (
    PREFIX,
    SESSION_COOKIE,
    PageLanguage,
    local_target,
    page,
    provide_page_language,
    secure_cookies,
    session_token,
)
from marketplace.errors import NotAuthenticated
from marketplace.kit.i18n import Language
from marketplace.web.principal import Access

Form = Body(media_type=RequestEncodingType.URL_ENCODED)


@dataclass
class SignInForm:
    email: str
    password: str
    next: str = ""


@dataclass
class LanguageForm:
    language: Language
    next: str = ""


def session_cookie(request: Request[Any, Any, Any], value: str, max_age: int) -> Cookie:
    """HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it), Secure over https."""
    return Cookie(
        key=SESSION_COOKIE,
        value=value,
        path=PREFIX,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
    )


class SigningController(Controller):
    path = PREFIX
    include_in_schema = False
    dependencies = {"page_language": Provide(provide_page_language, sync_to_thread=False)}

    @get("/sign-in", opt={"scope": Access.PUBLIC}, sync_to_thread=False)
    def sign_in_form(
        self, request: Request[Any, Any, Any], page_language: PageLanguage, next: FromQuery[str] = ""
    ) -> Template:
        return page(request, "sign_in.html", page_language, next=local_target(next), error=None)

    @post("/sign-in", opt={"scope": Access.PUBLIC})
    async def sign_in(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[SignInForm, Form],
        auth: NamedDependency[AuthService],
        console_sessions: NamedDependency[ConsoleSessions],
        settings: NamedDependency[Settings],
        page_language: PageLanguage,
    ) -> Response[Any]:
        """A failed sign-in counts towards the API's throttle (429 past it); a person who is not an
        administrator is told so, and gets no session."""
        address = request.client.host if request.client else "unknown"
        target = local_target(data.next)
        try:
            user = await auth.sign_in(data.email, data.password, address)
        except NotAuthenticated:
            return page(request, "sign_in.html", page_language, status_code=401, next=target, error="sign_in.wrong")
        if not user.is_admin:
            return page(request, "sign_in.html", page_language, status_code=403, next=target, error="sign_in.not_admin")
        token = await console_sessions.open(user.id)
        cookie = session_cookie(request, token, settings.console_session_max_seconds)
        return Redirect(target, status_code=303, cookies=[cookie])

    @post("/sign-out", opt={"scope": Access.PUBLIC})
    async def sign_out(
        self, request: Request[Any, Any, Any], console_sessions: NamedDependency[ConsoleSessions]
    ) -> Redirect:
        token = session_token(request)
        if token:
            await console_sessions.end(token)
        return Redirect(f"{PREFIX}/sign-in", status_code=303, cookies=[session_cookie(request, "", 0)])

    @post("/language", opt={"scope": Access.PUBLIC}, sync_to_thread=False)
    def choose_language(self, request: Request[Any, Any, Any], data: Annotated[LanguageForm, Form]) -> Redirect:
        cookie = Cookie(
            key=LANGUAGE_COOKIE,
            value=data.language.value,
            path=PREFIX,
            max_age=LANGUAGE_COOKIE_SECONDS,
            httponly=True,
            samesite="strict",
            secure=secure_cookies(request),
        )
        return Redirect(local_target(data.next), status_code=303, cookies=[cookie])
