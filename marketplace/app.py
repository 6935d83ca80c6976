"""The application factory."""

from __future__ import annotations

import secrets
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.pydantic import PydanticDIPlugin
from litestar.routes import HTTPRoute
from litestar.types import Message, Scope
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.controllers import (
    AdminAccountsController,
    ApiKeyController,
    AuthController,
    MeController,
    OrganizationController,
)
from marketplace.accounts.tokens import TokenKeyring
from marketplace.audit.controllers import AuditController
from marketplace.catalog.controllers import AdminProductController, CatalogFeedController, ProductController
from marketplace.compliance.controllers import RulesController
from marketplace.compliance.guards import RULEBOOK
from marketplace.compliance.rulebook import load_rulebook
from marketplace.config import Settings
from marketplace.db import create_engine, create_sessionmaker
from marketplace.delivery.controllers import (
    AdminDeliveryController,
    DataController,
    DatasetController,
    DownloadController,
    LicenceController,
    OrderDeliveryController,
)
from marketplace.delivery.links import DownloadKeyring
from marketplace.errors import EXCEPTION_HANDLERS
from marketplace.health import HealthController
from marketplace.kit.logs import configure_logging
from marketplace.kit.schemas import RequestBodyPlugin, RequestBodySchemaPlugin
from marketplace.kit.secrets import load_or_create
from marketplace.ledger.controllers import AdminLedgerController, AdminSettlementController, BalanceController
from marketplace.orders.controllers import (
    AdminOrderController,
    AdminTradesController,
    OrderController,
    TradePreviewController,
)
from marketplace.payments.controllers import PaymentAccountController, WebhookController
from marketplace.payments.gateways import gateway_from_settings

CONTROLLERS = [
    HealthController,
    AuthController,
    MeController,
    OrganizationController,
    ApiKeyController,
    AdminAccountsController,
    AuditController,
    RulesController,
    ProductController,
    AdminProductController,
    CatalogFeedController,
    BalanceController,
    AdminLedgerController,
    AdminSettlementController,
    TradePreviewController,
    OrderController,
    AdminOrderController,
    AdminTradesController,
    PaymentAccountController,
    WebhookController,
    DatasetController,
    OrderDeliveryController,
    DownloadController,
    LicenceController,
    DataController,
    AdminDeliveryController,
]


# Where a request's session is kept in its ASGI scope, for `release_abandoned_session`.
_SESSION_IN_SCOPE = "marketplace.db_session"


async def provide_db_session(state: State, scope: Scope) -> AsyncGenerator[AsyncSession, None]:
    """One transaction per request: committed when the handler succeeds, rolled back when it raises.

    The same unit of work as `db.unit_of_work`, written out: a generator nested in this one would be
    finalised twice at once when Litestar abandons this one (see `release_abandoned_session`)."""
    async with state.db_sessions() as session:
        scope.setdefault("state", {})[_SESSION_IN_SCOPE] = session
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


async def release_abandoned_session(_exc: Exception, scope: Scope) -> None:
    """Litestar never resumes a generator dependency when a dependency resolved after it raises (a 401
    from `principal`, a 400 from `page`): release that request's session, its connection and its open
    transaction now rather than when the generator is garbage-collected."""
    session = scope.get("state", {}).pop(_SESSION_IN_SCOPE, None)
    if session is not None:
        await session.close()


async def complete_allow_header(message: Message, scope: Scope) -> None:
    """Litestar builds a path's automatic OPTIONS answer with the first handler registered for the path,
    and its `Allow` header keeps only that handler's methods: list every method the path has."""
    if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
        return
    headers = list(message.get("headers", []))
    template = scope.get("path_template")
    routes = [r for r in scope["litestar_app"].routes if isinstance(r, HTTPRoute) and r.path_format == template]
    if len(routes) != 1 or not any(name.lower() == b"allow" for name, _ in headers):
        return
    methods = routes[0].methods
    allow = ", ".join(sorted(methods)).encode("latin-1")
    message["headers"] = [(n, v) for n, v in headers if n.lower() != b"allow"] + [(b"allow", allow)]


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level, settings.log_json)
    engine = create_engine(settings)
    # one per process, made now so a misconfigured gateway stops the service from starting
    gateway = gateway_from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await gateway.aclose()
            await engine.dispose()

    state = State(
        {
            "settings": settings,
            "db_sessions": create_sessionmaker(engine),
            "token_keyring": TokenKeyring.from_settings(settings),
            "rulebook": load_rulebook(settings.rulebook_path),
            "secret_key": load_or_create(settings.secret_key_path, lambda: secrets.token_bytes(32)),
            "payment_gateway": gateway,
            "download_keyring": DownloadKeyring.load(settings.download_key_dir, settings.download_key_id),
        }
    )
    return Litestar(
        route_handlers=CONTROLLERS,
        dependencies={"db_session": Provide(provide_db_session), **RULEBOOK},
        plugins=[RequestBodyPlugin(), RequestBodySchemaPlugin(), PydanticDIPlugin()],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        after_exception=[release_abandoned_session],
        before_send=[complete_allow_header],
        lifespan=[lifespan],
        state=state,
        request_max_body_size=settings.max_request_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Data exchange marketplace",
            version="1.0.0",
            description="List data products, trade them through a compliance gate, settle through escrow.",
            components=Components(
                security_schemes={
                    "BearerAuth": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        bearer_format="JWT or API key",
                        description="An access token from /api/v1/auth/token, or an API key (mkt_...).",
                    )
                }
            ),
        ),
    )


def app_from_env() -> Litestar:
    """Factory for the ASGI server (`marketplace serve`)."""
    return create_app(Settings.from_env())
