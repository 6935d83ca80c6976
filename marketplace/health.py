"""Liveness with a database round trip, and the public keys that verify access tokens."""

from typing import Any

from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from pydantic import BaseModel
from sqlalchemy import text

from marketplace.accounts.tokens import TokenKeyring
from marketplace.db import DbSession


class Health(BaseModel):
    status: str
    database: str


class HealthController(Controller):
    path = "/"
    tags = ["service"]

    @get(
        "/health",
        responses={503: ResponseSpec(data_container=Health, description="The database is unreachable")},
    )
    async def health(self, db_session: DbSession) -> Response[Health]:
        try:
            await db_session.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any database failure means "not healthy"
            return Response(Health(status="degraded", database="unavailable"), status_code=503)
        return Response(Health(status="ok", database="ok"))

    @get("/.well-known/jwks.json")
    async def jwks(self, request: Request[Any, Any, State]) -> dict[str, Any]:
        """The keys that verify this service's access tokens (RFC 7517)."""
        keyring: TokenKeyring = request.app.state.token_keyring
        return keyring.jwks()
