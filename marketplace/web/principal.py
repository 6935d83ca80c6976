"""Resolving the caller of a request, and the guards on who may call what."""

from __future__ import annotations

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from marketplace.accounts.auth import AuthService
from marketplace.accounts.principal import Principal
from marketplace.errors import Forbidden, NotAuthenticated

# The caller, as handlers and providers declare it.
Caller = NamedDependency[Principal]


def bearer_credential(request: Request[object, object, State]) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise NotAuthenticated()
    return credential.strip()


async def provide_principal(request: Request[object, object, State], auth: NamedDependency[AuthService]) -> Principal:
    return await auth.authenticate(bearer_credential(request))


async def provide_admin(principal: Caller) -> Principal:
    if not principal.is_admin or principal.is_api_key:
        raise Forbidden("platform administrators only")
    return principal


AUTHENTICATED = {"principal": Provide(provide_principal)}
ADMIN_ONLY = {"principal": Provide(provide_principal), "admin": Provide(provide_admin)}
# OpenAPI: which routes take a bearer credential.
SECURITY: list[dict[str, list[str]]] = [{"BearerAuth": []}]
