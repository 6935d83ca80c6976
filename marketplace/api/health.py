"""Liveness with a database round trip, and the public keys that verify access tokens."""

from typing import Any

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from pydantic import BaseModel
from sqlalchemy import text

from marketplace.web.dependencies import DbSession
from marketplace.web.principal import Access
from marketplace.wiring import Runtime


class Health(BaseModel):
    status: str
    database: str


class HealthController(Controller):
    path = "/"
    tags = ["service"]

    @get(
        "/health",
        responses={503: ResponseSpec(data_container=Health, description="The database is unreachable")},
        opt={"scope": Access.PUBLIC},
    )
    async def health(self, db_session: DbSession) -> Response[Health]:
        try:
            await db_session.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any database failure means "not healthy"
            return Response(Health(status="degraded", database="unavailable"), status_code=503)
        return Response(Health(status="ok", database="ok"))

    @get("/.well-known/jwks.json", opt={"scope": Access.PUBLIC})
    async def jwks(self, runtime: NamedDependency[Runtime]) -> dict[str, Any]:
        """The keys that verify this service's access tokens (RFC 7517)."""
        return runtime.token_keyring.jwks()
