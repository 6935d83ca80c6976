"""Resolving the caller of a request, and who may call what: every route declares it in its `opt`."""

from __future__ import annotations

import enum

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.plugins import ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute

from marketplace.accounts.models import Scope
from marketplace.accounts.principal import Principal
from marketplace.errors import Forbidden, NotAuthenticated
from marketplace.kit.i18n import Message
from marketplace.wiring import Services

# The caller, as handlers and providers declare it.
Caller = NamedDependency[Principal]


class Access(enum.Enum):
    """Who may call a route that no API key scope opens."""

    # No caller is resolved: anyone, or a credential of its own (a gateway's signature, a signed link,
    # a licence's access key).
    PUBLIC = "public"
    # A person's access token; API keys are refused.
    PERSON = "person"
    # A platform administrator's access token; API keys are refused.
    ADMIN = "admin"


# Every route handler declares who may call it: `@get(..., opt={"scope": Scope.ORDERS_READ})`, or an `Access`.
SCOPE = "scope"
# A route that also answers visitors without a credential declares `opt={"scope": ..., VISITORS: True}`: a
# request without an `Authorization` header is served as VISITOR (who sees only what is public, the listed
# catalog); a request with one is authenticated as everywhere else, so a bad token is still 401.
VISITORS = "visitors"
VISITOR = Principal(user_id=None)
Required = Scope | Access
# The OpenAPI security scheme of a caller's bearer credential.
BEARER = "BearerAuth"


def bearer_credential(request: Request[object, object, State]) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise NotAuthenticated()
    return credential.strip()


def admit(principal: Principal, required: Required) -> None:
    """Refuse (403) a caller the route does not admit: a public route admits anyone, and a person's access
    token is not limited by scopes."""
    if required is Access.ADMIN:
        if not principal.is_admin or principal.is_api_key:
            raise Forbidden(Message("auth.administrators-only", "platform administrators only"))
    elif required is Access.PERSON:
        principal.require_person()
    elif isinstance(required, Scope):
        principal.require_scope(required)


async def provide_principal(request: Request[object, object, State], services: NamedDependency[Services]) -> Principal:
    """The caller, authenticated (401 first), then admitted by what the route declares (403). The request's
    `services`, not an `auth` dependency: one dependency fewer resolved beside the handler's own."""
    if "authorization" not in request.headers and request.route_handler.opt.get(VISITORS):
        return VISITOR
    principal = await services.auth.authenticate(bearer_credential(request))
    admit(principal, request.route_handler.opt[SCOPE])
    return principal


async def provide_admin(principal: Caller) -> Principal:
    """Administrators' handlers name their caller `admin`; their `Access.ADMIN` admitted it."""
    return principal


AUTHENTICATED = {"principal": Provide(provide_principal)}
ADMIN_ONLY = {"principal": Provide(provide_principal), "admin": Provide(provide_admin)}
# OpenAPI: a public route that takes a bearer credential of its own (a licence's access key).
SECURITY: list[dict[str, list[str]]] = [{BEARER: []}]


def security_of(required: Required, *, visitors: bool = False) -> list[dict[str, list[str]]]:
    """A caller's route in OpenAPI: a bearer credential, with the scope an API key needs (none for people's
    and administrators' routes, which no key calls); optional where visitors are served too."""
    credential = {BEARER: [required.value] if isinstance(required, Scope) else []}
    return [{}, credential] if visitors else [credential]


class DeclaredSecurity(ReceiveRoutePlugin):
    """Each operation's OpenAPI security requirement, from what its route declares; a public route keeps
    what its controller says (the data API documents its licence access key)."""

    def receive_route(self, route: BaseRoute) -> None:
        if not isinstance(route, HTTPRoute):
            return
        for handler in route.route_handlers:
            required = handler.opt.get(SCOPE, Access.PUBLIC)
            if required is not Access.PUBLIC:
                handler.security = security_of(required, visitors=bool(handler.opt.get(VISITORS)))
