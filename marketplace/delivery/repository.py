"""Every query on the delivery tables."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import String, Table, and_, bindparam, case, func, literal_column, null, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, class_mapper
from sqlmodel import col

from marketplace.catalog.models import LISTING_STAMP, PricePlan, ProductVersion
from marketplace.db import table_of, upsert_insert
from marketplace.delivery.models import (
    AccessKey,
    Dataset,
    DeliveryReceipt,
    Licence,
    LicenceRateWindow,
    LicenceStatus,
    LicenceUsage,
    PrivacyBudget,
    RateWindow,
    UsageEvent,
    usage_period,
)
from marketplace.kit import clock
from marketplace.kit.ids import new_id
from marketplace.orders.models import Order, OrderStatus


@dataclass(frozen=True)
class CallsSoFar:
    key_in_minute: int
    licence_in_minute: int
    licence_in_month: int
    billed_in_month_minor: int


@dataclass(frozen=True)
class MeteredCall:
    """A metered call, as its usage event records it."""

    access_key_id: uuid.UUID
    endpoint: str
    at: datetime
    call_number: int
    charge_minor: int


@dataclass(frozen=True)
class DataCallRead:
    """What authorising a data call reads, in one statement: the access key of the credential's prefix, its
    licence, the licence's order status, plan and dataset, its counts so far (as `calls_so_far`), its privacy
    budget, and the stamp of the rows the delivery stage's facts come from."""

    key: AccessKey
    licence: Licence
    order_status: OrderStatus
    plan: PricePlan
    dataset: Dataset | None
    so_far: CallsSoFar
    budget: PrivacyBudget | None
    # PostgreSQL: the row versions (xmin) of the product, the version, its plans and sample, the provider, the
    # buyer and the version's assessors, which change whenever one of those rows does; None on SQLite.
    facts_stamp: str | None


def _dataset_of(version_id: Any) -> Any:
    """The dataset a version delivers (see `dataset_of_version`): its id, the first by preference."""
    version, hosted_for = aliased(ProductVersion, name="version"), aliased(ProductVersion, name="hosted_for")
    return (
        select(col(Dataset.id))
        .join(hosted_for, col(hosted_for.id) == col(Dataset.product_version_id))
        .join(
            version,
            and_(
                col(version.product_id) == col(hosted_for.product_id),
                col(version.content_sha256) == col(Dataset.sha256),
            ),
        )
        .where(col(version.id) == version_id)
        # by the inner version's id, which is `version_id`: SQLite's ORDER BY reads no outer column
        .order_by(case((col(Dataset.product_version_id) == col(version.id), 0), else_=1), col(Dataset.created_at))
        .limit(1)
    )


# Built once: every data call reads its dataset, and aliasing the wide ProductVersion twice per call cost more
# than a third of the call's CPU.
_VERSION_ID = bindparam("version_id", type_=table_of(ProductVersion).c.id.type)
_DATASET_OF_VERSION = select(Dataset).where(col(Dataset.id) == _dataset_of(_VERSION_ID).scalar_subquery())

# The facts stamp, as PostgreSQL text correlated with the statement's `licence`: our names only, no input.
_FACTS_STAMP = f"""(SELECT concat_ws(';', pr.xmin, bo.xmin, {LISTING_STAMP})
  FROM product_version v JOIN product pr ON pr.id = v.product_id JOIN organization po ON po.id = pr.organization_id
  JOIN organization bo ON bo.id = licence.buyer_organization_id LEFT JOIN sample s ON s.id = v.sample_id
  WHERE v.id = licence.product_version_id)"""  # noqa: S608


def _counts(access_key_id: Any, licence_id: Any) -> list[Any]:
    """The four counts of `CallsSoFar`, as scalar subqueries, at the `window_start` and `period` parameters."""
    key_window, licence_window, usage = table_of(RateWindow), table_of(LicenceRateWindow), table_of(LicenceUsage)
    window = bindparam("window_start", type_=key_window.c.window_start.type)
    in_month = (usage.c.licence_id == licence_id, usage.c.period == bindparam("period", type_=usage.c.period.type))
    return [
        select(key_window.c.calls)
        .where(key_window.c.access_key_id == access_key_id, key_window.c.window_start == window)
        .scalar_subquery(),
        select(licence_window.c.calls)
        .where(licence_window.c.licence_id == licence_id, licence_window.c.window_start == window)
        .scalar_subquery(),
        select(usage.c.calls).where(*in_month).scalar_subquery(),
        select(usage.c.billed_minor).where(*in_month).scalar_subquery(),
    ]


def _data_call_read(postgres: bool) -> Any:
    """The statement of `DataCallRead`, by the key's prefix, at a minute and a month: the whole rows of
    `_READ_WHOLE` first, then the order's status, the counts, the budget and the stamp."""
    key, licence, plan, dataset = (table_of(model) for model in _READ_WHOLE)
    budget = table_of(PrivacyBudget)
    stamp = literal_column(_FACTS_STAMP) if postgres else null()
    dataset_id = _dataset_of(licence.c.product_version_id).correlate(licence).scalar_subquery()
    order = table_of(Order)
    return (
        select(
            key,
            licence,
            plan,
            dataset,
            order.c.status,
            *_counts(key.c.id, licence.c.id),
            budget.c.budget_micro,
            budget.c.spent_micro,
            budget.c.queries,
            stamp,
        )
        .select_from(key)
        .join(licence, licence.c.id == key.c.licence_id)
        .join(order, order.c.id == licence.c.order_id)
        .join(plan, plan.c.id == licence.c.plan_id)
        .outerjoin(dataset, dataset.c.id == dataset_id)
        .outerjoin(budget, budget.c.licence_id == licence.c.id)
        .where(key.c.prefix == bindparam("prefix"))
        .limit(1)
    )


# The rows a data call reads whole, by their columns' names: read as plain rows and made models as the session
# makes loaded ones (an instance with its state, its attributes set in place), but not the session's: its
# loading of four objects cost more CPU than the statement's round trip.
_READ_WHOLE = {model: tuple(table_of(model).c.keys()) for model in (AccessKey, Licence, PricePlan, Dataset)}
Whole = TypeVar("Whole", AccessKey, Licence, PricePlan, Dataset)


def _whole(model: type[Whole], values: Iterator[Any]) -> Whole | None:
    """The model of the next row of `values` read whole (`_READ_WHOLE`); None when an outer join found none."""
    names = _READ_WHOLE[model]
    found = dict(zip(names, itertools.islice(values, len(names)), strict=True))
    if found["id"] is None:
        return None
    instance: Whole = class_mapper(model).class_manager.new_instance()
    instance.__dict__.update(found)
    return instance


def _data_call_of(row: Sequence[Any]) -> DataCallRead:
    """The `DataCallRead` of a row of `_data_call_read`."""
    values = iter(row)
    key, licence, plan = _whole(AccessKey, values), _whole(Licence, values), _whole(PricePlan, values)
    dataset = _whole(Dataset, values)
    order_status, *counts, budget_micro, spent_micro, queries, stamp = values
    assert key is not None  # the statement's inner joins
    assert licence is not None
    assert plan is not None
    budget = None
    if budget_micro is not None:
        budget = PrivacyBudget(
            licence_id=licence.id, budget_micro=budget_micro, spent_micro=spent_micro, queries=queries
        )
    so_far = CallsSoFar(*(int(value or 0) for value in counts))
    return DataCallRead(key, licence, order_status, plan, dataset, so_far, budget, stamp)


_DATA_CALL_READ = {postgres: _data_call_read(postgres) for postgres in (False, True)}
# A licence's metering lock on PostgreSQL: an advisory lock keyed by a 64-bit hash of its id.
_METERING_KEY = func.hashtextextended(bindparam("licence_id", type_=String()), 0)
# The lock tried and, once held, the counts of `CallsSoFar` read, in one round trip (migration 0028): no row when
# another transaction holds the lock.
_TRY_METERING_TURN = text(
    "SELECT * FROM metering_turn(CAST(:licence_id AS uuid), CAST(:access_key_id AS uuid), "
    "CAST(:window_start AS timestamptz), CAST(:period AS varchar))"
)
_WAIT_FOR_METERING = select(func.pg_advisory_xact_lock(_METERING_KEY))


def _count_in_window(insert: Any, table: Table, owner: str) -> Any:
    statement = insert(table).values(
        {owner: bindparam(owner), "window_start": bindparam("window_start"), "calls": bindparam("calls")}
    )
    return statement.on_conflict_do_update(
        index_elements=[table.c[owner], table.c.window_start], set_={"calls": table.c.calls + statement.excluded.calls}
    )


def _meter_calls(insert: Any) -> Any:
    """The month's usage counted up by `calls` and `billed_minor`, unless that passes `cap_minor` (the month's
    first row is held to it by the CHECK constraint): RETURNING a row when counted."""
    table = table_of(LicenceUsage)
    names = ("licence_id", "period", "calls", "billed_minor", "cap_minor", "updated_at")
    statement = insert(table).values({name: bindparam(name, type_=table.c[name].type) for name in names})
    added = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[table.c.licence_id, table.c.period],
        set_={
            "calls": table.c.calls + added.calls,
            "billed_minor": table.c.billed_minor + added.billed_minor,
            "updated_at": added.updated_at,
        },
        where=or_(added.cap_minor.is_(None), table.c.billed_minor + added.billed_minor <= added.cap_minor),
    ).returning(table.c.calls)


def _spend_privacy(insert: Any) -> Any:
    """The licence's budget (made at `budget_micro` with its first spend) spent by `spent_micro` more over
    `queries` answers, unless that passes it: RETURNING the budget after."""
    table = table_of(PrivacyBudget)
    names = ("licence_id", "budget_micro", "spent_micro", "queries", "updated_at")
    statement = insert(table).values({name: bindparam(name, type_=table.c[name].type) for name in names})
    added = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[table.c.licence_id],
        set_={
            "spent_micro": table.c.spent_micro + added.spent_micro,
            "queries": table.c.queries + added.queries,
            "updated_at": added.updated_at,
        },
        where=table.c.spent_micro + added.spent_micro <= table.c.budget_micro,
    ).returning(table.c.budget_micro, table.c.spent_micro, table.c.queries)


# The metering's statements, built once per dialect: built per call, a statement cost more CPU to build and
# to key for the compiled cache than to run.
_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
# SQLite writes what a metering batch adds a statement each (PostgreSQL in one, `_RECORD_METERING`).
_COUNT_IN_WINDOW = {
    table.name: _count_in_window(sqlite.insert, table, owner)
    for table, owner in ((table_of(RateWindow), "access_key_id"), (table_of(LicenceRateWindow), "licence_id"))
}
_METER_CALLS = _meter_calls(sqlite.insert)
_SPEND_PRIVACY = {dialect: _spend_privacy(insert) for dialect, insert in _INSERTS.items()}
_CALLS_SO_FAR = select(*_counts(bindparam("access_key_id"), bindparam("licence_id")))
# What a metering batch adds, on PostgreSQL in one statement (the upserts of `_count_in_window` and
# `_meter_calls`, and the usage events), each part's rows given as arrays: RETURNING a row per month counted.
_RECORD_METERING = text(
    """WITH key_minutes AS (
  INSERT INTO access_key_rate_window AS w (access_key_id, window_start, calls)
  SELECT k.id, k.window_start, k.calls
  FROM unnest(CAST(:key_ids AS uuid[]), CAST(:key_windows AS timestamptz[]), CAST(:key_calls AS integer[]))
    AS k(id, window_start, calls)
  ON CONFLICT (access_key_id, window_start) DO UPDATE SET calls = w.calls + excluded.calls
), licence_minutes AS (
  INSERT INTO licence_rate_window AS w (licence_id, window_start, calls)
  SELECT CAST(:licence_id AS uuid), l.window_start, l.calls
  FROM unnest(CAST(:licence_windows AS timestamptz[]), CAST(:licence_calls AS integer[])) AS l(window_start, calls)
  ON CONFLICT (licence_id, window_start) DO UPDATE SET calls = w.calls + excluded.calls
), events AS (
  INSERT INTO usage_event (id, licence_id, access_key_id, endpoint, period, call_number, charge_minor, rows, at)
  SELECT e.id, CAST(:licence_id AS uuid), e.key_id, e.endpoint, e.period, e.call_number, e.charge_minor, 0, e.at
  FROM unnest(
    CAST(:event_ids AS uuid[]), CAST(:event_keys AS uuid[]), CAST(:event_endpoints AS varchar[]),
    CAST(:event_periods AS varchar[]), CAST(:event_numbers AS integer[]), CAST(:event_charges AS bigint[]),
    CAST(:event_ats AS timestamptz[])
  ) AS e(id, key_id, endpoint, period, call_number, charge_minor, at)
), months AS (
  INSERT INTO licence_usage AS u (licence_id, period, calls, billed_minor, cap_minor, updated_at)
  SELECT CAST(:licence_id AS uuid), m.period, m.calls, m.billed_minor, CAST(:cap_minor AS bigint),
    CAST(:updated_at AS timestamptz)
  FROM unnest(CAST(:periods AS varchar[]), CAST(:period_calls AS integer[]), CAST(:period_billed AS bigint[]))
    AS m(period, calls, billed_minor)
  ON CONFLICT (licence_id, period) DO UPDATE
  SET calls = u.calls + excluded.calls, billed_minor = u.billed_minor + excluded.billed_minor,
    updated_at = excluded.updated_at
  WHERE excluded.cap_minor IS NULL OR u.billed_minor + excluded.billed_minor <= excluded.cap_minor
  RETURNING 1
)
SELECT count(*) FROM months"""
)


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # licences

    async def add_licence(self, licence: Licence) -> Licence:
        """Insert the order's licence unless it has one (a replayed payment): returns the one it has."""
        row = licence.model_dump()
        insert = upsert_insert(self.session)(table_of(Licence)).values(**row).on_conflict_do_nothing()
        await self.session.execute(insert)
        existing = await self.licence_of_order(licence.order_id)
        assert existing is not None
        return existing

    async def licence(self, licence_id: uuid.UUID) -> Licence | None:
        return await self.session.get(Licence, licence_id, populate_existing=True)

    async def licence_of_order(self, order_id: uuid.UUID) -> Licence | None:
        query = select(Licence).where(col(Licence.order_id) == order_id).execution_options(populate_existing=True)
        return (await self.session.scalars(query)).first()

    async def set_licence_status(
        self, licence_id: uuid.UUID, allowed: frozenset[LicenceStatus], to: LicenceStatus, reason: str | None
    ) -> bool:
        """Guarded change: only from one of the `allowed` statuses; False when another request moved it."""
        query = (
            update(Licence)
            .where(col(Licence.id) == licence_id, col(Licence.status).in_(allowed))
            .values(status=to, status_reason=reason, updated_at=clock.now())
            .execution_options(synchronize_session=False)
        )
        result: Any = await self.session.execute(query)
        return bool(result.rowcount)

    async def due_to_expire(self, live: frozenset[LicenceStatus], now: datetime, limit: int) -> Sequence[Any]:
        """Up to `limit` licences in one of the `live` statuses whose term has ended by `now` (their columns),
        soonest first, locked for this transaction; those another transaction holds are skipped (a
        concurrent expiry takes them, or the next one does). Rows, not the session's objects: the guarded
        updates change them, and the session has nothing of its own to flush."""
        licences = table_of(Licence)
        query = (
            select(licences)
            .where(licences.c.status.in_(live), licences.c.ends_at <= now, licences.c.renewal_days.is_(None))
            .order_by(licences.c.ends_at, licences.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.execute(query)).all()

    async def extend_licence(self, licence_id: uuid.UUID, ends_at: datetime, to: datetime) -> bool:
        """Move a licence's end from `ends_at` to `to`; False when its end is no longer `ends_at`."""
        query = (
            update(Licence)
            .where(col(Licence.id) == licence_id, col(Licence.ends_at) == ends_at)
            .values(ends_at=to, updated_at=clock.now())
            .execution_options(synchronize_session=False)
        )
        result: Any = await self.session.execute(query)
        return bool(result.rowcount)

    async def licences_of(
        self, organization_ids: set[uuid.UUID] | None, *, limit: int, offset: int
    ) -> tuple[Sequence[Licence], int]:
        """Licences whose buyer or provider is one of `organization_ids` (None: all), newest first."""
        query = select(Licence)
        counted = select(func.count()).select_from(Licence)
        if organization_ids is not None:
            mine = col(Licence.buyer_organization_id).in_(organization_ids) | col(Licence.provider_organization_id).in_(
                organization_ids
            )
            query, counted = query.where(mine), counted.where(mine)
        rows = await self.session.scalars(
            query.order_by(col(Licence.created_at).desc(), col(Licence.id)).limit(limit).offset(offset)
        )
        return rows.all(), int((await self.session.execute(counted)).scalar_one())

    # datasets

    async def dataset_of_version(self, version_id: uuid.UUID) -> Dataset | None:
        """The dataset a version delivers: the one hosted under its registered digest, for it or for an
        earlier version of the product. An edit's new version carries the digest over (and can register no
        other), so it delivers the file already hosted, as the listing stage (R1) took it to."""
        return (await self.session.scalars(_DATASET_OF_VERSION, {"version_id": version_id})).first()

    async def put_dataset(self, dataset: Dataset) -> None:
        self.session.add(dataset)
        await self.session.flush()

    # access keys and their rate

    async def add_access_key(self, key: AccessKey) -> None:
        self.session.add(key)
        await self.session.flush()

    async def data_call(self, prefix: str, window_start: datetime, period: str) -> DataCallRead | None:
        """What authorising a call with the access key of `prefix` reads (see `DataCallRead`), in one statement;
        None when no key has that prefix. Outside a transaction when the session has none yet: one statement
        is consistent on its own, and a transaction begun and committed around it cost two more round trips.
        The models it gives are not the session's: nothing of theirs is written through it."""
        if self.session.in_transaction():
            connection = await self.session.connection()
        else:
            connection = await self.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        postgres = connection.dialect.name == "postgresql"
        parameters = {"prefix": prefix, "window_start": window_start, "period": period}
        row = (await connection.execute(_DATA_CALL_READ[postgres], parameters)).first()
        return None if row is None else _data_call_of(row)

    async def active_access_key(self, licence_id: uuid.UUID) -> AccessKey | None:
        query = select(AccessKey).where(col(AccessKey.licence_id) == licence_id, col(AccessKey.revoked_at).is_(None))
        return (await self.session.scalars(query)).first()

    async def revoke_access_keys(self, licence_id: uuid.UUID) -> None:
        query = (
            update(AccessKey)
            .where(col(AccessKey.licence_id) == licence_id, col(AccessKey.revoked_at).is_(None))
            .values(revoked_at=clock.now())
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(query)

    async def _count_calls(self, access_key_id: uuid.UUID, window_start: datetime, calls: int) -> None:
        """Count `calls` more in the key's minute, in one statement."""
        await self._count_in_window(table_of(RateWindow), "access_key_id", access_key_id, window_start, calls)

    async def _count_licence_calls(self, licence_id: uuid.UUID, window_start: datetime, calls: int) -> None:
        """Count `calls` more in the licence's minute, whichever keys made them."""
        await self._count_in_window(table_of(LicenceRateWindow), "licence_id", licence_id, window_start, calls)

    async def _count_in_window(
        self, table: Table, owner: str, owner_id: uuid.UUID, window_start: datetime, calls: int
    ) -> None:
        """One upsert adds the calls: a concurrent one would queue on the row's lock (or its unique key, for the
        minute's first), so no count is lost."""
        statement = _COUNT_IN_WINDOW[table.name]
        await self.session.execute(statement, {owner: owner_id, "window_start": window_start, "calls": calls})

    def _dialect(self) -> str:
        return str(self.session.get_bind().dialect.name)

    async def prune_rate_windows(self, before: datetime) -> int:
        """Delete the keys' and the licences' call counts of minutes that started before `before`."""
        pruned = 0
        for table in (table_of(RateWindow), table_of(LicenceRateWindow)):
            result: Any = await self.session.execute(table.delete().where(table.c.window_start < before))
            pruned += result.rowcount
        return pruned

    async def calls_so_far(
        self, access_key_id: uuid.UUID, licence_id: uuid.UUID, window_start: datetime, period: str
    ) -> CallsSoFar:
        """The key's and the licence's calls in the minute, and the licence's calls and charges in the month, as
        committed now: one read that takes no lock (the guarded updates of the metering decide)."""
        parameters = {"access_key_id": access_key_id, "licence_id": licence_id, "window_start": window_start}
        row = (await self.session.execute(_CALLS_SO_FAR, {**parameters, "period": period})).one()
        return CallsSoFar(*(int(value or 0) for value in row))

    # metering

    async def metering_turn(
        self, licence_id: uuid.UUID, access_key_id: uuid.UUID, window_start: datetime, period: str, *, wait: bool
    ) -> CallsSoFar | None:
        """Take the licence's metering lock, which every metering of its calls takes first, until this transaction
        ends, then read the key's and the licence's counts (as `calls_so_far`) as committed once it is held: its
        rate windows, usage and privacy budget are read and written by one transaction at a time, which never
        waits on another's rows. Without `wait`, None (and nothing held) when another transaction holds it.
        PostgreSQL: an advisory lock keyed by the licence (a wait for it is on the lock, never on another
        transaction's id), tried with the read in one statement (the function `metering_turn`, whose read
        sees what was committed once the lock is held). SQLite has no row locks, and starts a transaction at
        its first write: a write that changes nothing takes its one writer's lock (waiting for it) before
        anything is read."""
        if self._dialect() == "sqlite":
            licences = table_of(Licence)
            touch = update(licences).where(licences.c.id == licence_id).values(status=licences.c.status)
            await self.session.execute(touch)
        elif wait:
            await self.session.execute(_WAIT_FOR_METERING, {"licence_id": str(licence_id)})
        else:
            parameters = {"licence_id": licence_id, "access_key_id": access_key_id, "window_start": window_start}
            row = (await self.session.execute(_TRY_METERING_TURN, {**parameters, "period": period})).first()
            return None if row is None else CallsSoFar(*(int(value or 0) for value in row))
        return await self.calls_so_far(access_key_id, licence_id, window_start, period)

    async def _meter_month(
        self, licence_id: uuid.UUID, period: str, *, calls: int, billed_minor: int, cap_minor: int | None
    ) -> bool:
        """Count `calls` more in the licence's month and `billed_minor` more billed: False, and nothing
        counted, when that would pass the monthly cap. One guarded upsert of the month's row (the CHECK
        constraint `usage_within_cap` stands behind it, and refuses a month's first row past the cap)."""
        values = {"calls": calls, "billed_minor": billed_minor, "cap_minor": cap_minor, "updated_at": clock.now()}
        result = await self.session.execute(_METER_CALLS, {"licence_id": licence_id, "period": period, **values})
        return result.first() is not None

    async def record_metering(
        self,
        licence_id: uuid.UUID,
        key_minutes: Mapping[tuple[uuid.UUID, datetime], int],
        licence_minutes: Mapping[datetime, int],
        months: Mapping[str, tuple[int, int]],
        cap_minor: int | None,
        calls: Sequence[MeteredCall],
    ) -> bool:
        """Write what a metering batch adds: calls counted in the keys' and the licence's minutes, calls and
        charges (minor units) in its months, a usage event per call. False when a month's usage would pass
        `cap_minor` (that month is not counted). On PostgreSQL one statement, whose round trip a batch spends
        holding its licence's metering lock; SQLite a statement each."""
        if self._dialect() == "sqlite":
            for (key_id, window), added in key_minutes.items():
                await self._count_calls(key_id, window, added)
            for window, added in licence_minutes.items():
                await self._count_licence_calls(licence_id, window, added)
            counted = [
                await self._meter_month(licence_id, period, calls=added, billed_minor=billed, cap_minor=cap_minor)
                for period, (added, billed) in months.items()
            ]
            await self._add_usage_events(licence_id, calls)
            return all(counted)
        parameters = {
            "licence_id": licence_id,
            "key_ids": [key_id for key_id, _ in key_minutes],
            "key_windows": [window for _, window in key_minutes],
            "key_calls": list(key_minutes.values()),
            "licence_windows": list(licence_minutes),
            "licence_calls": list(licence_minutes.values()),
            "event_ids": [new_id() for _ in calls],
            "event_keys": [call.access_key_id for call in calls],
            "event_endpoints": [call.endpoint for call in calls],
            "event_periods": [usage_period(call.at) for call in calls],
            "event_numbers": [call.call_number for call in calls],
            "event_charges": [call.charge_minor for call in calls],
            "event_ats": [call.at for call in calls],
            "periods": list(months),
            "period_calls": [added for added, _ in months.values()],
            "period_billed": [billed for _, billed in months.values()],
            "cap_minor": cap_minor,
            "updated_at": clock.now(),
        }
        counted = (await self.session.execute(_RECORD_METERING, parameters)).scalar_one()
        return int(counted) == len(months)

    async def usage(self, licence_id: uuid.UUID, period: str) -> LicenceUsage | None:
        return await self.session.get(LicenceUsage, (licence_id, period), populate_existing=True)

    async def spend_privacy(
        self, licence_id: uuid.UUID, epsilon_micro: int, *, budget_micro: int, queries: int = 1
    ) -> PrivacyBudget | None:
        """Spend `epsilon_micro` of the licence's privacy budget (created at `budget_micro` on its first query):
        the budget after the spend, or None when the spend would pass it, and nothing is spent. One guarded
        upsert of the licence's row: concurrent queries queue on its row lock, so the budget holds exactly."""
        values = {"budget_micro": budget_micro, "spent_micro": epsilon_micro, "queries": queries}
        statement = _SPEND_PRIVACY[self._dialect()]
        row = (
            await self.session.execute(statement, {"licence_id": licence_id, **values, "updated_at": clock.now()})
        ).first()
        if row is None:
            return None
        return PrivacyBudget(licence_id=licence_id, budget_micro=row[0], spent_micro=row[1], queries=row[2])

    async def privacy_budget(self, licence_id: uuid.UUID) -> PrivacyBudget | None:
        return await self.session.get(PrivacyBudget, licence_id, populate_existing=True)

    async def _add_usage_events(self, licence_id: uuid.UUID, calls: Sequence[MeteredCall]) -> None:
        """A usage event per metered call of the licence: rows of the Core table, not models, whose
        validation cost more than the insert."""
        rows = [
            {
                "id": new_id(),
                "licence_id": licence_id,
                "access_key_id": call.access_key_id,
                "endpoint": call.endpoint,
                "period": usage_period(call.at),
                "call_number": call.call_number,
                "charge_minor": call.charge_minor,
                "rows": 0,
                "at": call.at,
            }
            for call in calls
        ]
        await self.session.execute(table_of(UsageEvent).insert(), rows)

    # receipts

    async def add_receipt(self, receipt: DeliveryReceipt) -> None:
        await self.session.execute(table_of(DeliveryReceipt).insert(), [receipt.model_dump()])

    async def receipts(self, order_id: uuid.UUID) -> Sequence[DeliveryReceipt]:
        query = (
            select(DeliveryReceipt)
            .where(col(DeliveryReceipt.order_id) == order_id)
            .order_by(col(DeliveryReceipt.at), col(DeliveryReceipt.id))
        )
        return (await self.session.scalars(query)).all()
