"""Idempotent requests: a POST that creates an order or moves money may carry an `Idempotency-Key`.

Per caller and key: the first request runs and its response is stored in the same transaction as its
effect; the same key with the same request gets that response again; with another request, 422; while
the first still runs, 409. The claim is committed before the work starts, so concurrent requests see
it; a failed request (an error raised) releases its key, so the client may retry it. A claim left by a
process that died is taken over after IDEMPOTENCY_LOCK_SECONDS."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from litestar import Response
from sqlalchemy import bindparam, delete, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from marketplace.db import table_of, upsert_insert
from marketplace.errors import PROBLEM_MEDIA_TYPE, Conflict, Unprocessable
from marketplace.kit import clock
from marketplace.kit.canonical import canonical_json
from marketplace.orders.models import IdempotencyRecord, IdempotencyState

IDEMPOTENCY_HEADER = "Idempotency-Key"


class IdempotencyKeyReused(Unprocessable):
    code = "idempotency-key-reused"
    title = "Idempotency key used for another request"


class IdempotentRequestInFlight(Conflict):
    code = "idempotency-request-in-flight"
    title = "A request with this idempotency key is still running"


def request_fingerprint(method: str, path: str, body: Any) -> str:
    """What makes two requests the same: method, path and the parsed body, canonically."""
    return hashlib.sha256(canonical_json({"method": method, "path": path, "body": body}).encode()).hexdigest()


# Built once: with the response inlined, the statement would cost far more CPU to build than to run.
_FINISH = (
    update(IdempotencyRecord)
    .where(col(IdempotencyRecord.actor) == bindparam("b_actor"), col(IdempotencyRecord.key) == bindparam("b_key"))
    .values(
        state=IdempotencyState.DONE,
        response_status=bindparam("b_status"),
        response_body=bindparam("b_body", type_=table_of(IdempotencyRecord).c.response_body.type),
    )
)


class IdempotencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, actor: str, key: str, fingerprint: str, stale_before: Any) -> IdempotencyRecord | None:
        """Insert the in-flight claim; None when claimed (by this call, or by taking over a dead one),
        else the record that holds the key."""
        values = {
            "actor": actor,
            "key": key,
            "request_hash": fingerprint,
            "state": IdempotencyState.IN_FLIGHT,
            "started_at": clock.now(),
        }
        # the row as parameters: a statement with the values inlined costs far more CPU to build
        insert = upsert_insert(self.session)(table_of(IdempotencyRecord)).on_conflict_do_nothing()
        inserted = await self.session.execute(insert, values)
        if inserted.rowcount:  # type: ignore[attr-defined]
            return None
        taken_over = await self.session.execute(
            update(IdempotencyRecord)
            .where(
                col(IdempotencyRecord.actor) == actor,
                col(IdempotencyRecord.key) == key,
                col(IdempotencyRecord.request_hash) == fingerprint,
                col(IdempotencyRecord.state) == IdempotencyState.IN_FLIGHT,
                col(IdempotencyRecord.started_at) < stale_before,
            )
            .values(started_at=clock.now())
        )
        if taken_over.rowcount:  # type: ignore[attr-defined]
            return None
        query = select(IdempotencyRecord).where(
            col(IdempotencyRecord.actor) == actor, col(IdempotencyRecord.key) == key
        )
        return (await self.session.scalars(query.execution_options(populate_existing=True))).one()

    async def finish(self, actor: str, key: str, status: int, body: Any) -> None:
        await self.session.execute(_FINISH, {"b_actor": actor, "b_key": key, "b_status": status, "b_body": body})

    async def release(self, actor: str, key: str) -> None:
        await self.session.execute(
            delete(IdempotencyRecord).where(
                col(IdempotencyRecord.actor) == actor,
                col(IdempotencyRecord.key) == key,
                col(IdempotencyRecord.state) == IdempotencyState.IN_FLIGHT,
            )
        )


async def run_idempotently(
    session: AsyncSession,
    *,
    actor: str,
    key: str | None,
    fingerprint: str,
    lock_seconds: int,
    action: Callable[[], Awaitable[tuple[int, Any]]],
) -> Response[Any]:
    """Run `action` (which returns a status and a JSON-ready body) at most once per caller and key.

    This commits the request's session twice: once to publish the claim, and, when the action raises,
    once to release it after rolling its work back."""
    if key is None:
        return _response(*await action())
    repository = IdempotencyRepository(session)
    held = await repository.claim(actor, key, fingerprint, clock.now() - timedelta(seconds=lock_seconds))
    await session.commit()
    if held is not None:
        if held.request_hash != fingerprint:
            raise IdempotencyKeyReused(f"the {IDEMPOTENCY_HEADER} {key!r} was used for another request")
        if held.state == IdempotencyState.IN_FLIGHT:
            raise IdempotentRequestInFlight(
                f"the request with {IDEMPOTENCY_HEADER} {key!r} is still running", headers={"Retry-After": "1"}
            )
        assert held.response_status is not None
        return _response(held.response_status, held.response_body, replayed=True)
    try:
        status, body = await action()
    except BaseException:
        await session.rollback()
        await repository.release(actor, key)
        await session.commit()
        raise
    await repository.finish(actor, key, status, body)
    return _response(status, body)


def _response(status: int, body: Any, *, replayed: bool = False) -> Response[Any]:
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    media_type = PROBLEM_MEDIA_TYPE if status >= 400 else "application/json"
    return Response(content=body, status_code=status, media_type=media_type, headers=headers)
