"""The application factory."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins import PluginProtocol
from litestar.plugins.pydantic import PydanticDIPlugin
from litestar.routes import HTTPRoute
from litestar.types import Message, Scope

from marketplace.api.accounts import (
    AdminAccountsController,
    ApiKeyController,
    AuthController,
    MeController,
    OrganizationController,
)
from marketplace.api.audit import AuditController
from marketplace.api.billing import AdminBillingController, UsageStatementController
from marketplace.api.catalog import AdminProductController, CatalogFeedController, ProductController
from marketplace.api.certificates import CertificateController
from marketplace.api.compliance import RulesController, TradePreviewController
from marketplace.api.delivery import (
    AdminDeliveryController,
    DataController,
    DatasetController,
    DownloadController,
    LicenceController,
    OrderDeliveryController,
)
from marketplace.api.events import EventController
from marketplace.api.health import HealthController
from marketplace.api.ledger import AdminLedgerController, AdminSettlementController, BalanceController
from marketplace.api.metrics import PROMETHEUS, MetricsController
from marketplace.api.orders import AdminOrderController, AdminTradesController, OrderController
from marketplace.api.payments import PaymentAccountController, PaymentMethodController, WebhookController
from marketplace.api.transparency import TransparencyController
from marketplace.api.webhooks import WebhookEndpointController
from marketplace.config import Settings
from marketplace.console.router import console_assets_router, console_router, template_config
from marketplace.jobs import in_process_schedule
from marketplace.kit.logs import configure_logging
from marketplace.kit.schemas import RequestBodyPlugin, RequestBodySchemaPlugin
from marketplace.web.dependencies import DEPENDENCIES, release_abandoned_session, resolve_dependencies_one_at_a_time
from marketplace.web.docs import RENDER_PLUGINS, assets_router, operation_id, problem_types_description
from marketplace.web.language import content_language
from marketplace.web.principal import DeclaredSecurity
from marketplace.web.problems import EXCEPTION_HANDLERS
from marketplace.web.requests import ServiceRequest, request_ids
from marketplace.web.tracing import tracing
from marketplace.wiring import Runtime

CONTROLLERS = [
    HealthController,
    MetricsController,
    AuthController,
    MeController,
    OrganizationController,
    ApiKeyController,
    AdminAccountsController,
    AuditController,
    TransparencyController,
    RulesController,
    ProductController,
    AdminProductController,
    CatalogFeedController,
    BalanceController,
    AdminLedgerController,
    AdminSettlementController,
    TradePreviewController,
    OrderController,
    CertificateController,
    AdminOrderController,
    AdminTradesController,
    PaymentAccountController,
    PaymentMethodController,
    WebhookController,
    DatasetController,
    OrderDeliveryController,
    DownloadController,
    LicenceController,
    DataController,
    AdminDeliveryController,
    EventController,
    WebhookEndpointController,
    UsageStatementController,
    AdminBillingController,
]


async def nosniff(message: Message, scope: Scope) -> None:
    """Every response, errors included: browsers must take its content type as given, never guess one."""
    if message["type"] == "http.response.start":
        message["headers"] = [*message.get("headers", []), (b"x-content-type-options", b"nosniff")]


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
    # made now, so a misconfigured rulebook, gateway or key stops the service from starting
    runtime = Runtime.start(settings)

    plugins: list[PluginProtocol] = [
        RequestBodyPlugin(),
        RequestBodySchemaPlugin(),
        PydanticDIPlugin(),
        DeclaredSecurity(),
    ]
    traced = tracing(settings, runtime.engine)
    if traced is not None:
        plugins.append(traced)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        try:
            async with in_process_schedule(runtime):
                yield
        finally:
            await runtime.stop()
            if traced is not None:  # the spans still batched go to the collector
                await asyncio.to_thread(traced.config.tracer_provider.shutdown)  # type: ignore[union-attr]

    resolve_dependencies_one_at_a_time()
    return Litestar(
        route_handlers=[*CONTROLLERS, assets_router(), console_router(runtime), console_assets_router()],
        template_config=template_config(),
        dependencies=DEPENDENCIES,
        plugins=plugins,
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        after_exception=[release_abandoned_session],
        before_send=[complete_allow_header, nosniff, content_language],
        lifespan=[lifespan],
        state=State({"runtime": runtime}),
        request_class=ServiceRequest,
        # `configure_logging` set the root logger's one JSON handler; Litestar's default logging config would
        # replace it with its own plain-text one (a line a worker logged, an error say, would not be JSON)
        logging_config=None,
        middleware=[request_ids, PROMETHEUS.middleware],
        request_max_body_size=settings.max_request_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Data exchange marketplace",
            version="1.0.0",
            description="List data products, trade them through a compliance gate, settle through escrow.\n\n"
            + problem_types_description(),
            render_plugins=RENDER_PLUGINS,
            use_handler_docstrings=True,
            operation_id_creator=operation_id,
            components=Components(
                security_schemes={
                    "BearerAuth": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        bearer_format="JWT or API key",
                        description="An access token from /api/v1/auth/token, or an API key (mkt_...). An "
                        "operation's requirement names the scope an API key needs to call it (a person's access "
                        "token is not limited by scopes); an operation that names none is not for API keys.",
                    )
                }
            ),
        ),
    )


GC_THRESHOLDS = (5_000, 20, 100)  # allocations before a young collection; young, then middle, before the next


def app_from_env() -> Litestar:
    """Factory for the ASGI server (`marketplace serve`), once per worker process."""
    app = create_app(Settings.from_env())
    # What the worker built to start (routes, schemas, the rulebook) lives as long as it does: frozen out
    # of the collector's reach, it is not walked again by every full collection during requests.
    gc.collect()
    gc.freeze()
    # An order allocates tens of thousands of objects, many of them containers: at Python's default of a young
    # collection every 700 allocations, the collector took about a fifth of a worker's CPU under load.
    # Collections 7 times rarer, and older generations' rarer still, cost about a quarter of that
    # (in process, 16 orders at a time); cyclic garbage waits a little longer to be freed.
    gc.set_threshold(*GC_THRESHOLDS)
    return app
