"""Idempotent requests: a POST that creates an order or moves money may carry an `Idempotency-Key`.

Per caller and key: the first request runs and its response is stored in the same transaction as its
effect; the same key with the same request gets that response again; with another request, 422. The claim
is written in the request's own transaction, before the work: a concurrent request with the same key waits
on the key's primary key until the first commits, then finds its stored response and replays it (or, when
the first failed and rolled back, runs itself). So one request costs one transaction. A handler that
commits as it goes (settlement) publishes its claim with its first commit: while it runs, the same key
gets 409. A failed request (an error raised) leaves its key free, so the client may retry it. A claim
committed and left by a process that died is taken over after IDEMPOTENCY_LOCK_SECONDS.

A handler whose work is one statement and calls no one outside the database (placing an order) stores its
answer with that work instead, claiming nothing first (`@idempotent(with_work=True)`): the record goes in, done,
with its answer, in the same statement. A concurrent request with the same key does its own work, waits at
that statement on the key's primary key until the first commits, then fails, rolls back and replays the
stored answer (or, when the first rolled back, stores its own). A request that fails for any reason looks for
a stored answer under its key before it gives up: the same request sent again after a success gets the first
answer even when its work would fail now (sold out).

A handler opts in with `@idempotent` under its route decorator and returns its usual DTO (or a Response):
the decorator adds what it needs to the handler's signature (the request, the caller, the session, the
settings and the documented `Idempotency-Key` header), and stores and replays the serialised response.
With `with_work=True` it also passes the handler `stored_answer`: None without a key, else the
`StoredAnswer` whose `row` the handler's statement writes, and whose `response` the handler returns."""

from __future__ import annotations

import enum
import functools
import hashlib
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, overload

import msgspec
from litestar import Request, Response
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import HeaderParameter
from litestar.serialization import default_serializer, encode_json
from pydantic import BaseModel
from sqlalchemy import bindparam, delete, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col, select

from marketplace.accounts.principal import Principal
from marketplace.db import DriverStatement, TableRow, table_of
from marketplace.errors import Conflict, Unprocessable
from marketplace.kit import clock
from marketplace.kit.canonical import canonical_json
from marketplace.kit.i18n import Message
from marketplace.kit.sqltypes import UTCDateTime, enum_column, json_document
from marketplace.web.problems import PROBLEM_MEDIA_TYPE
from marketplace.wiring import Services

IDEMPOTENCY_HEADER = "Idempotency-Key"
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name=IDEMPOTENCY_HEADER,
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="replaying the same key with the same request returns the first response",
    ),
]


class IdempotencyState(enum.StrEnum):
    IN_FLIGHT = "in_flight"
    DONE = "done"


class IdempotencyRecord(SQLModel, table=True):
    """A request made with an `Idempotency-Key`, per caller: while it runs, then its response."""

    __tablename__ = "idempotency_record"

    actor: str = Field(primary_key=True, max_length=80)
    key: str = Field(primary_key=True, max_length=255)
    # sha256 of method, path and body: the same key with another request is refused.
    request_hash: str = Field(max_length=64)
    state: IdempotencyState = Field(sa_type=enum_column(IdempotencyState))
    response_status: int | None = None
    response_body: Any = Field(default=None, sa_type=json_document(), nullable=True)
    started_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)


class IdempotencyKeyReused(Unprocessable):
    code = "idempotency-key-reused"
    title = "Idempotency key used for another request"


class IdempotentRequestInFlight(Conflict):
    code = "idempotency-request-in-flight"
    title = "A request with this idempotency key is still running"


def request_fingerprint(method: str, path: str, body: Any) -> str:
    """What makes two requests the same: method, path and the parsed body, canonically."""
    return hashlib.sha256(canonical_json({"method": method, "path": path, "body": body}).encode()).hexdigest()


# Built once, on the table: with the response inlined, the statement would cost far more CPU to build
# than to run, and the ORM's version looks for the record among the session's objects on every call.
_RECORDS = table_of(IdempotencyRecord)
# ON CONFLICT DO NOTHING as PostgreSQL writes it, which SQLite's compiler writes the same
_CLAIM = DriverStatement(postgresql.insert(_RECORDS).on_conflict_do_nothing())
_FINISH = DriverStatement(
    update(_RECORDS)
    .where(_RECORDS.c.actor == bindparam("b_actor"), _RECORDS.c.key == bindparam("b_key"))
    .values(
        state=IdempotencyState.DONE,
        response_status=bindparam("b_status"),
        response_body=bindparam("b_body", type_=_RECORDS.c.response_body.type),
    )
)


@dataclass
class StoredAnswer:
    """A request's answer stored under its key by the statement that does its work (`idempotent(with_work=True)`)."""

    actor: str
    key: str
    fingerprint: str
    answer: tuple[int, bytes] | None = None  # (status, JSON body), once `row` made the record

    def row(self, result: Any, status: int) -> TableRow:
        """The key's record, done, with `result` (a DTO or a Response) as its answer, for the work's statement.
        The answer is encoded once: the same bytes are stored and sent."""
        self.answer = _encoded(result, status)
        return TableRow(
            _RECORDS,
            {
                "actor": self.actor,
                "key": self.key,
                "request_hash": self.fingerprint,
                "state": IdempotencyState.DONE,
                "response_status": self.answer[0],
                "response_body": msgspec.Raw(self.answer[1]),  # written into the statement as the JSON it is
                "started_at": clock.now(),
            },
        )

    def response(self) -> Response[Any]:
        """The answer as `row` stored it."""
        assert self.answer is not None, "the handler's work stored no answer"
        return _response(*self.answer)


class IdempotencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, actor: str, key: str, fingerprint: str, stale_before: Any) -> IdempotencyRecord | None:
        """Insert the in-flight claim; None when claimed (by this call, or by taking over a dead one),
        else the record that holds the key. On PostgreSQL the insert waits while another open transaction
        holds the same key, and then finds its committed record (or, if it rolled back, claims the key)."""
        values = {
            "actor": actor,
            "key": key,
            "request_hash": fingerprint,
            "state": IdempotencyState.IN_FLIGHT,
            "started_at": clock.now(),
        }
        # the row as parameters: a statement with the values inlined costs far more CPU to build
        if (await _CLAIM.execute(self.session, values)).rowcount:
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
        held = await self.held(actor, key)
        assert held is not None
        return held

    async def held(self, actor: str, key: str) -> IdempotencyRecord | None:
        """The record of the caller's key, if there is one."""
        query = select(IdempotencyRecord).where(
            col(IdempotencyRecord.actor) == actor, col(IdempotencyRecord.key) == key
        )
        return (await self.session.scalars(query.execution_options(populate_existing=True))).first()

    async def finish(self, actor: str, key: str, status: int, body: Any) -> None:
        await _FINISH.execute(self.session, {"b_actor": actor, "b_key": key, "b_status": status, "b_body": body})

    async def prune(self, before: datetime) -> int:
        """Delete the records of requests started before `before`: their keys are then free again."""
        result: Any = await self.session.execute(
            delete(IdempotencyRecord).where(col(IdempotencyRecord.started_at) < before)
        )
        return int(result.rowcount)

    async def release(self, actor: str, key: str) -> None:
        await self.session.execute(
            delete(IdempotencyRecord).where(
                col(IdempotencyRecord.actor) == actor,
                col(IdempotencyRecord.key) == key,
                col(IdempotencyRecord.state) == IdempotencyState.IN_FLIGHT,
            )
        )


# What the decorator adds to a handler's signature when the handler does not take it itself. The session
# and the settings come with the request's `services`, which the caller's principal resolves anyway.
# The handler's parameter `idempotent(with_work=True)` passes: its `StoredAnswer`, or None without a key.
STORED_ANSWER = "stored_answer"
Handler = Callable[..., Awaitable[Any]]
_NEEDS: dict[str, Any] = {
    "request": Request[Any, Any, State],
    "principal": NamedDependency[Principal],
    "services": NamedDependency[Services],
    "idempotency_key": IdempotencyKey,
}


@overload
def idempotent(handler: Handler, /) -> Callable[..., Awaitable[Response[Any]]]: ...


@overload
def idempotent(*, with_work: bool) -> Callable[[Handler], Callable[..., Awaitable[Response[Any]]]]: ...


def idempotent(handler: Handler | None = None, /, *, with_work: bool = False) -> Any:
    """Run the handler at most once per caller and `Idempotency-Key` (see the module's docstring): claimed
    first, or with `with_work=True` stored by the handler's own statement."""
    if handler is None:
        return functools.partial(_idempotent, with_work=with_work)
    return _idempotent(handler, with_work=with_work)


def _idempotent(handler: Handler, *, with_work: bool) -> Callable[..., Awaitable[Response[Any]]]:
    signature = inspect.signature(handler)
    own = set(signature.parameters)
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=None)
        if name == "idempotency_key"
        else inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation)
        for name, annotation in _NEEDS.items()
        if name not in own
    ]
    # `stored_answer` is the decorator's to pass, not a parameter of the request
    parameters = [p for p in signature.parameters.values() if p.name != STORED_ANSWER]
    keyword_start = next((i for i, p in enumerate(parameters) if p.kind == p.KEYWORD_ONLY), len(parameters))
    returns = signature.return_annotation

    @functools.wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> Response[Any]:
        request: Request[Any, Any, State] = kwargs["request"]
        principal: Principal = kwargs["principal"]
        services: Services = kwargs["services"]
        key: str | None = kwargs["idempotency_key"]
        own_kwargs = {name: value for name, value in kwargs.items() if name in own}
        status = request.route_handler.status_code
        fingerprint = request_fingerprint(request.method, request.url.path, _jsonable(kwargs.get("data")))
        if with_work:
            stored = StoredAnswer(principal.actor, key, fingerprint) if key is not None else None
            return await run_with_stored_answer(
                services.session, stored, lambda: handler(*args, **own_kwargs, **{STORED_ANSWER: stored}), status
            )

        async def action() -> tuple[int, Any]:
            return _serialised(await handler(*args, **own_kwargs), status)

        return await run_idempotently(
            services.session,
            actor=principal.actor,
            key=key,
            fingerprint=fingerprint,
            lock_seconds=services.settings.idempotency_lock_seconds,
            action=action,
        )

    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*parameters[:keyword_start], *added, *parameters[keyword_start:]],
        return_annotation=returns if _is_response(returns) else Response[returns],  # type: ignore[valid-type]
    )
    wrapper.__annotations__ = {
        **{name: value for name, value in handler.__annotations__.items() if name != STORED_ANSWER},
        **{p.name: p.annotation for p in added},
        "return": wrapper.__signature__.return_annotation,  # type: ignore[attr-defined]
    }
    return wrapper


def _is_response(annotation: Any) -> bool:
    return isinstance(annotation, str) and annotation.startswith("Response")


def _jsonable(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def _serialised(result: Any, status: int) -> tuple[int, Any]:
    """A handler's result as a status and a JSON-ready body, exactly as it is stored and replayed."""
    if isinstance(result, Response):
        status, result = result.status_code or status, result.content
    return status, _jsonable(result) if isinstance(result, BaseModel) else _decoded(result)


def _decoded(content: Any) -> Any:
    return msgspec.json.decode(encode_json(content, default_serializer))


def _encoded(result: Any, status: int) -> tuple[int, bytes]:
    """A handler's result as a status and its JSON body, encoded as the response sends it."""
    if isinstance(result, Response):
        status, result = result.status_code or status, result.content
    if isinstance(result, BaseModel):
        return status, result.__pydantic_serializer__.to_json(result)
    return status, encode_json(result, default_serializer)


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

    The claim, the action's work and the stored response share the request's transaction, which the
    request's scope commits. When the action raises, its work is rolled back here and the claim released
    in a transaction of its own (the action may have committed it)."""
    if key is None:
        return _response(*await action())
    repository = IdempotencyRepository(session)
    held = await repository.claim(actor, key, fingerprint, clock.now() - timedelta(seconds=lock_seconds))
    if held is not None:
        return _answer_held(held, key, fingerprint)
    try:
        status, body = await action()
    except BaseException:
        await session.rollback()
        await repository.release(actor, key)
        await session.commit()
        raise
    await repository.finish(actor, key, status, body)
    return _response(status, body)


async def run_with_stored_answer(
    session: AsyncSession,
    stored: StoredAnswer | None,
    action: Callable[[], Awaitable[Any]],
    status: int,
) -> Response[Any]:
    """Run `action` (a handler whose statement writes `stored.row`, then returns `stored.response()`); without
    a key, its result is the answer. When it fails, its work is rolled back here and the answer stored under
    the key, if any, is the request's (a concurrent request with the key stored it first, or an earlier one
    did); else the failure stands."""
    if stored is None:
        return _response(*_serialised(await action(), status))
    try:
        result = await action()
    except Exception:
        await session.rollback()
        held = await IdempotencyRepository(session).held(stored.actor, stored.key)
        if held is None:
            raise
        return _answer_held(held, stored.key, stored.fingerprint)
    assert stored.answer is not None, "the handler's work stored no answer"
    response: Response[Any] = result
    return response


def _answer_held(held: IdempotencyRecord, key: str, fingerprint: str) -> Response[Any]:
    """The answer to a request whose key another request holds: its stored answer if it was the same request
    and is done; 422 if it was another request, 409 while it runs."""
    if held.request_hash != fingerprint:
        raise IdempotencyKeyReused(
            Message(
                "idempotency.key-reused",
                "the {header} {key!r} was used for another request",
                header=IDEMPOTENCY_HEADER,
                key=key,
            )
        )
    if held.state == IdempotencyState.IN_FLIGHT:
        raise IdempotentRequestInFlight(
            Message(
                "idempotency.in-flight",
                "the request with {header} {key!r} is still running",
                header=IDEMPOTENCY_HEADER,
                key=key,
            ),
            headers={"Retry-After": "1"},
        )
    assert held.response_status is not None
    return _response(held.response_status, held.response_body, replayed=True)


def _response(status: int, body: Any, *, replayed: bool = False) -> Response[Any]:
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    media_type = PROBLEM_MEDIA_TYPE if status >= 400 else "application/json"
    return Response(content=body, status_code=status, media_type=media_type, headers=headers)
