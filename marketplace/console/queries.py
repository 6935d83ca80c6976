"""The console's read-only queries across domains: the overview's aggregates (each one GROUP BY in SQL, never
every row), queue sizes, the worker's backlog, and a trade's ledger movements, licence and receipts. Decisions
never come here: they go through the services the API uses."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Date, Label, RowMapping, bindparam, cast, func, text
from sqlalchemy import select as select_columns
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col, select

from marketplace.accounts.models import Organization, OrganizationStatus
from marketplace.audit.models import AuditTreeHead
from marketplace.catalog.models import Product, ProductStatus
from marketplace.compliance.models import StoredVerdict
from marketplace.delivery.models import DeliveryReceipt, Licence, LicenceStatus
from marketplace.events.models import DeliveryStatus, WebhookDelivery
from marketplace.kit.sqltypes import UTCDateTime
from marketplace.ledger.models import LedgerAccount, Transfer
from marketplace.ledger.repository import account_totals
from marketplace.orders.models import Order, OrderStatus

# The checks the overview ranks, and how far back its charts look.
FAILING_CHECKS_SHOWN = 10
CHART_DAYS = 30

# The failed checks of the period's verdicts (stored with each verdict: see StoredVerdict.failed_checks), by rule
# and check; the predicate on failed_checks is the partial index's, so only failing verdicts are read.
_FAILING_CHECKS = {
    "postgresql": """
        SELECT c->>'rule_id' AS rule_id, c->>'check' AS check_name, count(*) AS failures
        FROM verdict AS v, jsonb_array_elements(v.failed_checks) AS c
        WHERE v.created_at >= :since AND v.failed_checks <> '[]'::jsonb
        GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT :shown""",
    "sqlite": """
        SELECT json_extract(c.value, '$.rule_id') AS rule_id, json_extract(c.value, '$.check') AS check_name,
               count(*) AS failures
        FROM verdict AS v, json_each(v.failed_checks) AS c
        WHERE v.created_at >= :since AND v.failed_checks <> '[]'
        GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT :shown""",
}
# The job engine's queue (PostgreSQL; on SQLite the jobs run in the serving process and queue nothing).
_JOBS = """
    SELECT count(*) FILTER (WHERE status = 'todo' AND (scheduled_at IS NULL OR scheduled_at <= now())) AS due,
           count(*) FILTER (WHERE status = 'failed') AS failing
    FROM procrastinate_jobs"""


@dataclass(frozen=True)
class QueueSizes:
    admissions: int
    listings: int
    held_trades: int
    suspended_licences: int
    disputes: int


@dataclass(frozen=True)
class Backlog:
    jobs_due: int | None  # None: no job queue (SQLite)
    jobs_failing: int | None
    webhooks_due: int
    webhooks_retrying: int
    webhooks_failed: int


class ConsoleQueries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def dialect(self) -> str:
        return self.session.get_bind().dialect.name

    def _day(self) -> Any:
        """The UTC calendar day of an order's placing."""
        if self.dialect == "postgresql":
            return cast(func.timezone("UTC", col(Order.created_at)), Date)
        return func.date(col(Order.created_at))

    async def trades_per_day(self, since: datetime) -> Sequence[RowMapping]:
        """Orders placed and their amount, per day and currency, since `since`."""
        day = self._day().label("day")
        columns: tuple[Label[Any], ...] = (
            day,
            col(Order.currency).label("currency"),
            func.count().label("trades"),
            func.sum(col(Order.amount_minor)).label("amount_minor"),
        )
        query = (
            select_columns(*columns)
            .where(col(Order.created_at) >= since)
            .group_by(day, col(Order.currency))
            .order_by(day, col(Order.currency))
        )
        return (await self.session.execute(query)).mappings().all()

    async def verdicts_by_stage(self, since: datetime) -> Sequence[RowMapping]:
        columns: tuple[Label[Any], ...] = (
            col(StoredVerdict.stage).label("stage"),
            col(StoredVerdict.decision).label("decision"),
            func.count().label("verdicts"),
        )
        query = (
            select_columns(*columns)
            .where(col(StoredVerdict.created_at) >= since)
            .group_by(col(StoredVerdict.stage), col(StoredVerdict.decision))
        )
        return (await self.session.execute(query)).mappings().all()

    async def failing_checks(self, since: datetime) -> Sequence[RowMapping]:
        statement = text(_FAILING_CHECKS[self.dialect]).bindparams(bindparam("since", type_=UTCDateTime))
        return (await self.session.execute(statement, {"since": since, "shown": FAILING_CHECKS_SHOWN})).mappings().all()

    async def queue_sizes(self) -> QueueSizes:
        def count(model: Any, status: Any, value: Any) -> Any:
            return select_columns(func.count()).select_from(model).where(status == value).scalar_subquery()

        row = (
            await self.session.execute(
                select_columns(
                    count(Organization, col(Organization.status), OrganizationStatus.UNDER_REVIEW),
                    count(Product, col(Product.status), ProductStatus.UNDER_REVIEW),
                    count(Order, col(Order.status), OrderStatus.PENDING_REVIEW),
                    count(Licence, col(Licence.status), LicenceStatus.SUSPENDED),
                    count(Order, col(Order.status), OrderStatus.DISPUTED),
                )
            )
        ).one()
        return QueueSizes(*(int(n) for n in row))

    async def backlog(self, now: datetime) -> Backlog:
        status, next_attempt = col(WebhookDelivery.status), col(WebhookDelivery.next_attempt_at)
        open_ = status.in_([DeliveryStatus.PENDING, DeliveryStatus.SENDING])
        webhooks = (
            await self.session.execute(
                select_columns(
                    func.count().filter(open_, next_attempt <= now),
                    func.count().filter(open_, col(WebhookDelivery.failures) > 0),
                    func.count().filter(status == DeliveryStatus.FAILED),
                )
            )
        ).one()
        jobs_due = jobs_failing = None
        if self.dialect == "postgresql":
            jobs = (await self.session.execute(text(_JOBS))).one()
            jobs_due, jobs_failing = int(jobs[0]), int(jobs[1])
        return Backlog(jobs_due, jobs_failing, int(webhooks[0]), int(webhooks[1]), int(webhooks[2]))

    async def audit_head(self) -> int:
        """The size of the transparency log's latest signed tree head (its entries that are leaves)."""
        latest = select_columns(func.max(col(AuditTreeHead.tree_size)))
        return int((await self.session.execute(latest)).scalar_one() or 0)

    async def suspended_licences(self, *, limit: int, offset: int) -> tuple[Sequence[Licence], int]:
        suspended = col(Licence.status) == LicenceStatus.SUSPENDED
        total = (await self.session.execute(select(func.count()).select_from(Licence).where(suspended))).scalar_one()
        rows = await self.session.scalars(
            select(Licence).where(suspended).order_by(col(Licence.updated_at)).limit(limit).offset(offset)
        )
        return rows.all(), int(total)

    async def licence(self, licence_id: uuid.UUID) -> Licence | None:
        return await self.session.get(Licence, licence_id)

    async def licence_of_order(self, order_id: uuid.UUID) -> Licence | None:
        return (await self.session.scalars(select(Licence).where(col(Licence.order_id) == order_id))).first()

    async def receipts(self, order_id: uuid.UUID) -> Sequence[DeliveryReceipt]:
        query = select(DeliveryReceipt).where(col(DeliveryReceipt.order_id) == order_id)
        return (await self.session.scalars(query.order_by(col(DeliveryReceipt.at)))).all()

    async def movements(self, order_id: uuid.UUID) -> Sequence[RowMapping]:
        """The order's ledger transfers, oldest first, each with the keys of the accounts it moved money between."""
        debit, credit = aliased(LedgerAccount), aliased(LedgerAccount)
        columns: tuple[Label[Any], ...] = (
            col(Transfer.id).label("id"),
            col(Transfer.created_at).label("at"),
            col(Transfer.kind).label("kind"),
            col(Transfer.amount_minor).label("amount_minor"),
            col(Transfer.currency).label("currency"),
            col(debit.key).label("debit"),
            col(credit.key).label("credit"),
        )
        query = (
            select_columns(*columns)
            .join(debit, col(debit.id) == col(Transfer.debit_account_id))
            .join(credit, col(credit.id) == col(Transfer.credit_account_id))
            .where(col(Transfer.order_id) == order_id)
            .order_by(col(Transfer.created_at), col(Transfer.id))
        )
        return (await self.session.execute(query)).mappings().all()

    async def balances(self) -> Sequence[RowMapping]:
        """Debits, credits and balance (credits - debits) of every kind of ledger account, per currency (a pooled
        account's totals are its transfers')."""
        totals = account_totals()
        debits, credits = func.sum(totals.c.debits), func.sum(totals.c.credits)
        columns: tuple[Label[Any], ...] = (
            totals.c.code.label("code"),
            totals.c.currency.label("currency"),
            func.count().label("accounts"),
            debits.label("debits_minor"),
            credits.label("credits_minor"),
            (credits - debits).label("balance_minor"),
        )
        query = (
            select_columns(*columns)
            .group_by(totals.c.code, totals.c.currency)
            .order_by(totals.c.code, totals.c.currency)
        )
        return (await self.session.execute(query)).mappings().all()


def chart_start(now: datetime) -> datetime:
    """The first moment the overview's charts show: midnight UTC, CHART_DAYS - 1 days ago."""
    return (now - timedelta(days=CHART_DAYS - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
