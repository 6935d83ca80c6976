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
from litestar.plugins.pydantic import PydanticDIPlugin, PydanticSchemaPlugin
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
from marketplace.config import Settings
from marketplace.db import create_engine, create_sessionmaker, unit_of_work
from marketplace.errors import EXCEPTION_HANDLERS
from marketplace.health import HealthController
from marketplace.kit.logs import configure_logging
from marketplace.kit.schemas import RequestBodyPlugin
from marketplace.kit.secrets import load_or_create

CONTROLLERS = [
    HealthController,
    AuthController,
    MeController,
    OrganizationController,
    ApiKeyController,
    AdminAccountsController,
    AuditController,
]


async def provide_db_session(state: State) -> AsyncGenerator[AsyncSession, None]:
    """One transaction per request: committed when the handler succeeds, rolled back when it raises."""
    async with unit_of_work(state.db_sessions) as session:
        yield session


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level, settings.log_json)
    engine = create_engine(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await engine.dispose()

    state = State(
        {
            "settings": settings,
            "db_sessions": create_sessionmaker(engine),
            "token_keyring": TokenKeyring.from_settings(settings),
            "secret_key": load_or_create(settings.secret_key_path, lambda: secrets.token_bytes(32)),
        }
    )
    return Litestar(
        route_handlers=CONTROLLERS,
        dependencies={"db_session": Provide(provide_db_session)},
        plugins=[RequestBodyPlugin(), PydanticSchemaPlugin(), PydanticDIPlugin()],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
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
