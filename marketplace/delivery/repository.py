"""Every query on the delivery tables."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, bindparam, case, func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from marketplace.catalog.models import ProductVersion
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
)
from marketplace.kit import clock

LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for a NOWAIT lock that another transaction holds


@dataclass(frozen=True)
class CallsSoFar:
    key_in_minute: int
    licence_in_minute: int
    licence_in_month: int
    billed_in_month_minor: int


# Built once: every data call reads its dataset, and aliasing the wide ProductVersion twice per call cost more
# than a third of the call's CPU.
_VERSION, _HOSTED_FOR = aliased(ProductVersion, name="version"), aliased(ProductVersion, name="hosted_for")
_VERSION_ID = bindparam("version_id", type_=table_of(ProductVersion).c.id.type)
_DATASET_OF_VERSION = (
    select(Dataset)
    .join(_HOSTED_FOR, col(_HOSTED_FOR.id) == col(Dataset.product_version_id))
    .join(
        _VERSION,
        and_(
            col(_VERSION.product_id) == col(_HOSTED_FOR.product_id),
            col(_VERSION.content_sha256) == col(Dataset.sha256),
        ),
    )
    .where(col(_VERSION.id) == _VERSION_ID)
    .order_by(case((col(Dataset.product_version_id) == _VERSION_ID, 0), else_=1), col(Dataset.created_at))
    .limit(1)
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

    async def access_key_by_prefix(self, prefix: str) -> AccessKey | None:
        return (await self.session.scalars(select(AccessKey).where(col(AccessKey.prefix) == prefix))).first()

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

    async def count_calls(self, access_key_id: uuid.UUID, window_start: datetime, calls: int) -> None:
        """Count `calls` more in the key's minute, in one statement."""
        await self._count_in_window(table_of(RateWindow), "access_key_id", access_key_id, window_start, calls)

    async def count_licence_calls(self, licence_id: uuid.UUID, window_start: datetime, calls: int) -> None:
        """Count `calls` more in the licence's minute, whichever keys made them."""
        await self._count_in_window(table_of(LicenceRateWindow), "licence_id", licence_id, window_start, calls)

    async def _count_in_window(
        self, table: Table, owner: str, owner_id: uuid.UUID, window_start: datetime, calls: int
    ) -> None:
        """One upsert adds the calls: a concurrent one would queue on the row's lock (or its unique key, for the
        minute's first), so no count is lost."""
        values = {owner: owner_id, "window_start": window_start, "calls": calls}
        query = (
            upsert_insert(self.session)(table)
            .values(values)
            .on_conflict_do_update(
                index_elements=[table.c[owner], table.c.window_start], set_={"calls": table.c.calls + calls}
            )
        )
        await self.session.execute(query)

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
        key_window = table_of(RateWindow)
        licence_window = table_of(LicenceRateWindow)
        usage = table_of(LicenceUsage)
        in_month = (usage.c.licence_id == licence_id, usage.c.period == period)
        query = select(
            select(key_window.c.calls)
            .where(key_window.c.access_key_id == access_key_id, key_window.c.window_start == window_start)
            .scalar_subquery(),
            select(licence_window.c.calls)
            .where(licence_window.c.licence_id == licence_id, licence_window.c.window_start == window_start)
            .scalar_subquery(),
            select(usage.c.calls).where(*in_month).scalar_subquery(),
            select(usage.c.billed_minor).where(*in_month).scalar_subquery(),
        )
        row = (await self.session.execute(query)).one()
        return CallsSoFar(*(int(value or 0) for value in row))

    # metering

    async def lock_licence_metering(self, licence_id: uuid.UUID, *, wait: bool) -> bool:
        """Take the licence's row lock that every metering of its calls takes first, until this transaction
        ends: its rate windows, usage and privacy budget are then read and written by one transaction at a
        time, which never waits on another's rows. Without `wait`, False when another transaction holds it
        (tried in a savepoint, so the transaction goes on). FOR NO KEY UPDATE: inserts referring to the
        licence are not held up. SQLite has no row locks, and starts a transaction at its first write: a write
        that changes nothing takes its one writer's lock (waiting for it) before anything is read."""
        if self.session.get_bind().dialect.name == "sqlite":
            licences = table_of(Licence)
            touch = update(licences).where(licences.c.id == licence_id).values(status=licences.c.status)
            await self.session.execute(touch)
            return True
        query = (
            select(col(Licence.id))
            .where(col(Licence.id) == licence_id)
            .with_for_update(nowait=not wait, key_share=True)
        )
        try:
            async with self.session.begin_nested():
                await self.session.execute(query)
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
                return False
            raise
        return True

    async def meter_calls(
        self, licence_id: uuid.UUID, period: str, *, calls: int, billed_minor: int, cap_minor: int | None
    ) -> bool:
        """Count `calls` more in the licence's month and `billed_minor` more billed: False, and nothing
        counted, when that would pass the monthly cap. One guarded update on the month's row (the CHECK
        constraint `usage_within_cap` stands behind it)."""
        table = table_of(LicenceUsage)
        create = (
            upsert_insert(self.session)(table)
            .values(licence_id=licence_id, period=period, calls=0, billed_minor=0, cap_minor=cap_minor)
            .on_conflict_do_nothing()
        )
        await self.session.execute(create)
        query = (
            update(table)
            .where(table.c.licence_id == licence_id, table.c.period == period)
            .values(
                calls=table.c.calls + calls, billed_minor=table.c.billed_minor + billed_minor, updated_at=clock.now()
            )
            .returning(table.c.calls)
        )
        if cap_minor is not None:
            query = query.where(table.c.billed_minor + billed_minor <= cap_minor)
        return (await self.session.execute(query)).first() is not None

    async def usage(self, licence_id: uuid.UUID, period: str) -> LicenceUsage | None:
        return await self.session.get(LicenceUsage, (licence_id, period), populate_existing=True)

    async def spend_privacy(
        self, licence_id: uuid.UUID, epsilon_micro: int, *, budget_micro: int, queries: int = 1
    ) -> PrivacyBudget | None:
        """Spend `epsilon_micro` of the licence's privacy budget (created at `budget_micro` on its first query):
        the budget after the spend, or None when the spend would pass it, and nothing is spent. One guarded
        update on the licence's row: concurrent queries queue on its row lock, so the budget holds exactly."""
        table = table_of(PrivacyBudget)
        create = (
            upsert_insert(self.session)(table)
            .values(licence_id=licence_id, budget_micro=budget_micro, spent_micro=0, queries=0)
            .on_conflict_do_nothing()
        )
        await self.session.execute(create)
        query = (
            update(table)
            .where(table.c.licence_id == licence_id, table.c.spent_micro + epsilon_micro <= table.c.budget_micro)
            .values(
                spent_micro=table.c.spent_micro + epsilon_micro,
                queries=table.c.queries + queries,
                updated_at=clock.now(),
            )
            .returning(table.c.budget_micro, table.c.spent_micro, table.c.queries)
        )
        row = (await self.session.execute(query)).first()
        if row is None:
            return None
        return PrivacyBudget(licence_id=licence_id, budget_micro=row[0], spent_micro=row[1], queries=row[2])

    async def privacy_budget(self, licence_id: uuid.UUID) -> PrivacyBudget | None:
        return await self.session.get(PrivacyBudget, licence_id, populate_existing=True)

    async def add_usage_events(self, events: Sequence[UsageEvent]) -> None:
        await self.session.execute(table_of(UsageEvent).insert(), [event.model_dump() for event in events])

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
