"""Litestar's dependencies, wired in this one place: the request's transaction, the process's runtime, and
every service and flow `marketplace.wiring.Services` builds on the request's session. A handler declares
what it uses by name (`orders: NamedDependency[OrderService]`)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from functools import cached_property
from typing import Any

from litestar._kwargs.cleanup import DependencyCleanupGroup
from litestar._kwargs.dependencies import resolve_dependency
from litestar._kwargs.kwargs_model import KwargsModel
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.types import Scope
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.compliance.rulebook import Rulebook
from marketplace.config import Settings
from marketplace.web.language import provide_language
from marketplace.wiring import Runtime, Services

# Where a request's session is kept in its ASGI scope, for `release_abandoned_session`.
_SESSION_IN_SCOPE = "marketplace.db_session"

DbSession = NamedDependency[AsyncSession]

# A route's `opt` flag: its writes are each one statement that stands alone (placing an order), so on
# PostgreSQL its session runs every statement in a transaction of its own, sending no BEGIN or COMMIT (two
# round trips of an order's five); elsewhere the request has its one transaction as usual.
AUTOCOMMIT = "autocommit"


async def provide_db_session(state: State, scope: Scope) -> AsyncGenerator[AsyncSession, None]:
    """One transaction per request: committed when the handler succeeds, rolled back when it raises (unless
    the route runs its statements in transactions of their own, `AUTOCOMMIT`).

    The same unit of work as `db.unit_of_work`, written out: a generator nested in this one would be
    finalised twice at once when Litestar abandons this one (see `release_abandoned_session`)."""
    runtime: Runtime = state.runtime
    async with runtime.db_sessions() as session:
        scope.setdefault("state", {})[_SESSION_IN_SCOPE] = session
        if scope["route_handler"].opt.get(AUTOCOMMIT) and session.get_bind().dialect.name == "postgresql":
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
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


async def _resolve_one_at_a_time(
    self: KwargsModel, connection: ASGIConnection[Any, Any, Any, Any], kwargs: dict[str, Any]
) -> DependencyCleanupGroup:
    """Litestar's `KwargsModel.resolve_dependencies`, but the dependencies of one depth resolved one after
    another rather than side by side in a task group of their own: ours compute, or read through the request's
    one session, which serves one statement at a time anyway; the task groups cost about a tenth of an
    order's CPU (three per order: the session and the settings, `services` and the language, the caller and
    the flow). The cost is Litestar's known issue #4563 (open); this goes when Litestar resolves them cheaply."""
    cleanup_group = DependencyCleanupGroup()
    for batch in self.dependency_batches:
        for dependency in batch:
            await resolve_dependency(dependency, connection, kwargs, cleanup_group)
    return cleanup_group


def resolve_dependencies_one_at_a_time() -> None:
    """Make every route resolve its dependencies one at a time (see `_resolve_one_at_a_time`)."""
    KwargsModel.resolve_dependencies = _resolve_one_at_a_time  # type: ignore[method-assign]


# What the process made once is read from the app's state, not from a `runtime` dependency.


def provide_runtime(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


def provide_settings(state: State) -> Settings:
    return provide_runtime(state).settings


def provide_rulebook(state: State) -> Rulebook:
    return provide_runtime(state).rulebook


def provide_services(db_session: DbSession, state: State) -> Services:
    return Services(db_session, provide_runtime(state))


def _member_of_services(name: str) -> Callable[[Services], Any]:
    def provide(services: NamedDependency[Services]) -> Any:
        return getattr(services, name)

    provide.__name__ = f"provide_{name}"
    return provide


# Every public service and flow of `Services` (its cached properties).
SERVICE_NAMES = tuple(
    name for name, value in vars(Services).items() if isinstance(value, cached_property) and not name.startswith("_")
)

DEPENDENCIES: dict[str, Provide] = {
    "db_session": Provide(provide_db_session),
    "runtime": Provide(provide_runtime, sync_to_thread=False),
    "settings": Provide(provide_settings, sync_to_thread=False),
    "rulebook": Provide(provide_rulebook, sync_to_thread=False),
    "language": Provide(provide_language, sync_to_thread=False),
    "services": Provide(provide_services, sync_to_thread=False),
    **{name: Provide(_member_of_services(name), sync_to_thread=False) for name in SERVICE_NAMES},
}
