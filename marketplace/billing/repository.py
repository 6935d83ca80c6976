"""Every query on the billing tables, and the reads of metered usage and licences that make their rows.

A charge is inserted under its unique (licence, period), ON CONFLICT DO NOTHING: two workers making the same one
meet at the index (on PostgreSQL the second waits for the first to commit, then finds it). It leaves a status only
by an update guarded on the status and the attempt it was read at."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import and_, case, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from marketplace.billing.models import COLLECTABLE, Charge, ChargeStatus, SubscriptionRenewal, UsageStatement
from marketplace.catalog.models import PlanKind, PricePlan
from marketplace.db import upsert_insert
from marketplace.delivery.models import Licence, LicenceStatus, LicenceUsage, UsageEvent, next_period_start
from marketplace.orders.models import Order

C = TypeVar("C", bound=Charge)


@dataclass(frozen=True)
class ClosedUsage:
    """A metered licence's month that has ended and has no statement yet."""

    licence: Licence
    period: str
    calls: int
    billed_minor: int
    currency: str
    fee_bps: int


@dataclass(frozen=True)
class DueRenewal:
    """A subscription licence whose period has ended and has no renewal for it yet."""

    licence: Licence
    amount_minor: int
    currency: str
    fee_bps: int


class BillingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # making charges

    async def closed_usage(self, before_period: str, licence_id: uuid.UUID | None, limit: int) -> list[ClosedUsage]:
        """Months before `before_period` in which a metered licence was called, without a statement, oldest first."""
        stated = exists().where(
            col(UsageStatement.licence_id) == col(LicenceUsage.licence_id),
            col(UsageStatement.period) == col(LicenceUsage.period),
        )
        query = (
            select(
                Licence,
                col(LicenceUsage.period),
                col(LicenceUsage.calls),
                col(LicenceUsage.billed_minor),
                col(Order.currency),
                col(Order.fee_bps),
            )
            .join(Licence, col(Licence.id) == col(LicenceUsage.licence_id))
            .join(Order, col(Order.id) == col(Licence.order_id))
            .join(PricePlan, col(PricePlan.id) == col(Licence.plan_id))
            .where(col(PricePlan.kind) == PlanKind.METERED, col(LicenceUsage.period) < before_period, ~stated)
            .order_by(col(LicenceUsage.period), col(LicenceUsage.licence_id))
            .limit(limit)
        )
        if licence_id is not None:
            query = query.where(col(LicenceUsage.licence_id) == licence_id)
        rows = (await self.session.execute(query)).all()
        return [ClosedUsage(row[0], row[1], int(row[2]), int(row[3]), row[4], int(row[5])) for row in rows]

    async def billable_calls(self, licence_id: uuid.UUID, start: datetime, end: datetime) -> int:
        """The licence's calls billed (charged more than nothing) from `start` until `end`."""
        query = select(func.count()).where(
            col(UsageEvent.licence_id) == licence_id,
            col(UsageEvent.at) >= start,
            col(UsageEvent.at) < end,
            col(UsageEvent.charge_minor) > 0,
        )
        return int((await self.session.execute(query)).scalar_one())

    async def due_renewals(self, now: datetime, limit: int) -> list[DueRenewal]:
        """Active subscription licences whose period ended by `now` without a renewal for it, soonest first."""
        renewed = exists().where(
            col(SubscriptionRenewal.licence_id) == col(Licence.id),
            col(SubscriptionRenewal.period_start) == col(Licence.ends_at),
        )
        query = (
            select(Licence, col(Order.amount_minor), col(Order.currency), col(Order.fee_bps))
            .join(Order, col(Order.id) == col(Licence.order_id))
            .where(
                col(Licence.status) == LicenceStatus.ACTIVE,
                col(Licence.renewal_days).is_not(None),
                col(Licence.ends_at) <= now,
                ~renewed,
            )
            .order_by(col(Licence.ends_at), col(Licence.id))
            .limit(limit)
            .execution_options(populate_existing=True)
        )
        rows = (await self.session.execute(query)).all()
        return [DueRenewal(row[0], int(row[1]), row[2], int(row[3])) for row in rows]

    async def add(self, charge: Charge, unique: list[str]) -> bool:
        """Insert the charge unless one with the same `unique` columns exists; True when this one was inserted."""
        table = type(charge).__table__  # type: ignore[attr-defined]
        insert = (
            upsert_insert(self.session)(table)
            .values(**charge.model_dump())
            .on_conflict_do_nothing(index_elements=unique)
            .returning(table.c.id)
        )
        return (await self.session.execute(insert)).first() is not None

    # collecting

    async def due(self, model: type[C], now: datetime, limit: int) -> Sequence[C]:
        """Charges to collect now (issued, or failed with their next attempt due), oldest first; rows another
        transaction holds are skipped (a concurrent run takes them)."""
        query = (
            select(model)
            .where(
                col(model.status).in_(COLLECTABLE),
                col(model.amount_minor) > 0,
                or_(col(model.next_attempt_at).is_(None), col(model.next_attempt_at) <= now),
            )
            .order_by(col(model.created_at), col(model.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(query)).all()

    async def get(self, model: type[C], charge_id: uuid.UUID) -> C | None:
        return await self.session.get(model, charge_id, populate_existing=True)

    async def lock(self, model: type[C], charge_id: uuid.UUID) -> C | None:
        query = (
            select(model).where(col(model.id) == charge_id).with_for_update().execution_options(populate_existing=True)
        )
        return (await self.session.scalars(query)).first()

    async def move(self, charge: Charge, statuses: frozenset[ChargeStatus], **values: Any) -> bool:
        """Change a charge still in one of `statuses` at the attempt it was read at; False when another run moved
        it meanwhile."""
        model = type(charge)
        statement = (
            update(model)
            .where(
                col(model.id) == charge.id,
                col(model.status).in_(statuses),
                col(model.attempts) == charge.attempts,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool((await self.session.execute(statement)).rowcount)  # type: ignore[attr-defined]

    async def overdue(self, model: type[C], since_before: datetime, licence_status: LicenceStatus) -> Sequence[C]:
        """Unpaid charges whose grace started before `since_before` (a statement's first failure, a renewal's
        period end), of licences in `licence_status`."""
        started = col(model.failed_since) if model is UsageStatement else col(model.period_start)
        query = (
            select(model)
            .join(Licence, col(Licence.id) == col(model.licence_id))
            .where(col(model.status).in_(COLLECTABLE), started <= since_before, col(Licence.status) == licence_status)
            .order_by(col(model.created_at), col(model.id))
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(query)).all()

    async def unpaid_of(self, licence_id: uuid.UUID) -> int:
        """How many charges of the licence are not paid (statements and renewals)."""
        counted = 0
        for model in (UsageStatement, SubscriptionRenewal):
            query = select(func.count()).where(col(model.licence_id) == licence_id, col(model.status).in_(COLLECTABLE))
            counted += int((await self.session.execute(query)).scalar_one())
        return counted

    # settling

    async def to_settle(self, model: type[C], limit: int) -> Sequence[C]:
        """Paid charges not yet settled, oldest first, locked; those another transaction holds are skipped."""
        query = (
            select(model)
            .where(col(model.status) == ChargeStatus.PAID, col(model.settled_at).is_(None))
            .order_by(col(model.paid_at), col(model.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(query)).all()

    async def mark_settled(self, charge: Charge, at: datetime) -> bool:
        model = type(charge)
        statement = (
            update(model)
            .where(col(model.id) == charge.id, col(model.settled_at).is_(None))
            .values(settled_at=at)
            .execution_options(synchronize_session=False)
        )
        return bool((await self.session.execute(statement)).rowcount)  # type: ignore[attr-defined]

    # reading

    async def statements_of(
        self,
        organization_ids: set[uuid.UUID] | None,
        licence_id: uuid.UUID | None,
        status: ChargeStatus | None,
        *,
        limit: int,
        offset: int,
    ) -> tuple[Sequence[UsageStatement], int]:
        """Statements whose buyer or provider is one of `organization_ids` (None: all), newest period first."""
        conditions = []
        if organization_ids is not None:
            conditions.append(
                or_(
                    col(UsageStatement.buyer_organization_id).in_(organization_ids),
                    col(UsageStatement.provider_organization_id).in_(organization_ids),
                )
            )
        if licence_id is not None:
            conditions.append(col(UsageStatement.licence_id) == licence_id)
        if status is not None:
            conditions.append(col(UsageStatement.status) == status)
        where = and_(True, *conditions)
        rows = await self.session.scalars(
            select(UsageStatement)
            .where(where)
            .order_by(col(UsageStatement.period_start).desc(), col(UsageStatement.id))
            .limit(limit)
            .offset(offset)
        )
        total = (await self.session.execute(select(func.count()).select_from(UsageStatement).where(where))).scalar_one()
        return rows.all(), int(total)

    # the books

    async def billed(self) -> list[tuple[uuid.UUID, uuid.UUID, str, int]]:
        """(buyer, order, currency, amount): every metered call billed, summed per order."""
        query = (
            select(
                col(Licence.buyer_organization_id),
                col(Licence.order_id),
                col(Order.currency),
                func.sum(col(LicenceUsage.billed_minor)),
            )
            .join(Licence, col(Licence.id) == col(LicenceUsage.licence_id))
            .join(Order, col(Order.id) == col(Licence.order_id))
            .group_by(col(Licence.buyer_organization_id), col(Licence.order_id), col(Order.currency))
        )
        return [(row[0], row[1], row[2], int(row[3] or 0)) for row in (await self.session.execute(query)).all()]

    async def collected(self) -> list[tuple[uuid.UUID, uuid.UUID, str, int, int]]:
        """(buyer, order, currency, collected, settled): the paid statements' amounts per order, and those of them
        settled to the provider."""
        settled = case((col(UsageStatement.settled_at).is_not(None), col(UsageStatement.amount_minor)), else_=0)
        query = (
            select(
                col(UsageStatement.buyer_organization_id),
                col(UsageStatement.order_id),
                col(UsageStatement.currency),
                func.sum(col(UsageStatement.amount_minor)),
                func.sum(settled),
            )
            .where(col(UsageStatement.status) == ChargeStatus.PAID)
            .group_by(
                col(UsageStatement.buyer_organization_id), col(UsageStatement.order_id), col(UsageStatement.currency)
            )
        )
        rows = (await self.session.execute(query)).all()
        return [(row[0], row[1], row[2], int(row[3]), int(row[4])) for row in rows]

    async def renewal_escrow(self) -> dict[tuple[uuid.UUID, str], int]:
        """What each paid renewal not yet settled holds in its escrow."""
        query = select(
            col(SubscriptionRenewal.id), col(SubscriptionRenewal.currency), col(SubscriptionRenewal.amount_minor)
        ).where(
            col(SubscriptionRenewal.status) == ChargeStatus.PAID,
            col(SubscriptionRenewal.settled_at).is_(None),
            col(SubscriptionRenewal.amount_minor) > 0,
        )
        return {(row[0], row[1]): int(row[2]) for row in (await self.session.execute(query)).all()}


def month_bounds(period: str) -> tuple[datetime, datetime]:
    """The first instant of a month ("2026-11") and of the next, in UTC."""
    start = datetime.fromisoformat(f"{period}-01T00:00:00+00:00")
    return start, next_period_start(start)
