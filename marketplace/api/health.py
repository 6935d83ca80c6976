"""Liveness with a database round trip, readiness to serve, and the public keys that verify its signatures."""

import asyncio
import tempfile
from pathlib import Path
from typing import Any, Literal

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from marketplace.db import migrations_current, migrations_head
from marketplace.web.dependencies import DbSession
from marketplace.web.principal import Access
from marketplace.wiring import Runtime


class Health(BaseModel):
    status: str
    database: str


class Readiness(BaseModel):
    """Whether this process can serve: each part, and the database's migration against the code's."""

    status: Literal["ready", "not_ready"]
    database: Literal["ok", "unavailable"]
    migrations: Literal["at_head", "behind", "not_migrated", "unknown"]
    migration: str | None
    migration_head: str
    storage: Literal["ok", "not_writable"]


def _storage_writable(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            return True
    except OSError:
        return False


async def _database_revision(runtime: Runtime) -> tuple[bool, str | None]:
    """(reachable, recorded revision), on a connection of its own."""
    try:
        async with runtime.engine.connect() as connection:
            return True, await migrations_current(connection)
    except (DBAPIError, OSError):
        return False, None


class HealthController(Controller):
    path = "/"
    tags = ["service"]

    @get(
        "/health",
        responses={503: ResponseSpec(data_container=Health, description="The database is unreachable")},
        opt={"scope": Access.PUBLIC},
    )
    async def health(self, db_session: DbSession) -> Response[Health]:
        """Liveness: 200 while the process answers and its database connection works, else 503."""
        try:
            await db_session.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any database failure means "not healthy"
            return Response(Health(status="degraded", database="unavailable"), status_code=503)
        return Response(Health(status="ok", database="ok"))

    @get(
        "/ready",
        responses={503: ResponseSpec(data_container=Readiness, description="Not ready; each part says why")},
        opt={"scope": Access.PUBLIC},
    )
    async def ready(self, runtime: NamedDependency[Runtime]) -> Response[Readiness]:
        """Ready to serve: the database answers, its migrations are at the code's head, storage is writable.

        A load balancer sends traffic only when this answers 200; a database never migrated answers 503
        here instead of 500 "no such table" on the first real request."""
        reachable, revision = await _database_revision(runtime)
        head = migrations_head()
        if not reachable:
            migrations = "unknown"
        elif revision is None:
            migrations = "not_migrated"
        else:
            migrations = "at_head" if revision == head else "behind"
        writable = await asyncio.to_thread(_storage_writable, runtime.settings.storage_dir)
        ready = reachable and migrations == "at_head" and writable
        readiness = Readiness(
            status="ready" if ready else "not_ready",
            database="ok" if reachable else "unavailable",
            migrations=migrations,
            migration=revision,
            migration_head=head,
            storage="ok" if writable else "not_writable",
        )
        return Response(readiness, status_code=200 if ready else 503)

    @get("/.well-known/jwks.json", opt={"scope": Access.PUBLIC})
    async def jwks(self, runtime: NamedDependency[Runtime]) -> dict[str, Any]:
        """The keys that verify this service's signatures (RFC 7517): its access tokens' keys, and the notary's,
        current and retired (marked `"purpose": "notary"`), which sign the transparency log's tree heads and trade
        certificates (never an access token)."""
        return runtime.jwks()
