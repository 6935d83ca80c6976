"""The administrators' trade queries: trades by status, verdict, flagged rule, party, product and period,
a page at a time or in keyset batches for exports."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Label, RowMapping, func, type_coerce
from sqlalchemy import select as select_columns
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from marketplace.compliance.contract import Decision
from marketplace.orders.models import Order, OrderStatus


@dataclass(frozen=True)
class TradeFilters:
    """What administrators narrow trades by; None: any. `rule_id`: the trade verdict flagged that rule
    (failed it, or held the trade for review on it); `since`/`until`: placed in [since, until)."""

    status: OrderStatus | None = None
    decision: Decision | None = None
    rule_id: str | None = None
    provider_id: uuid.UUID | None = None
    buyer_id: uuid.UUID | None = None
    product_id: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None


# The columns of a trade as administrators read and export it, in export order, under their export names.
TRADE_COLUMNS: tuple[Label[Any], ...] = (
    col(Order.id).label("id"),
    col(Order.created_at).label("created_at"),
    col(Order.status).label("status"),
    col(Order.decision).label("decision"),
    col(Order.flagged_rules).label("flagged_rules"),
    col(Order.buyer_organization_id).label("buyer"),
    col(Order.provider_organization_id).label("provider"),
    col(Order.product_id).label("product"),
    col(Order.product_version_id).label("version"),
    col(Order.plan_id).label("plan"),
    col(Order.scenario).label("scenario"),
    col(Order.delivery_mode).label("delivery_mode"),
    col(Order.quantity).label("quantity"),
    col(Order.amount_minor).label("amount_minor"),
    col(Order.currency).label("currency"),
    col(Order.fee_bps).label("fee_bps"),
    col(Order.status_changed_at).label("status_changed_at"),
)


class TradeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _trade_conditions(self, filters: TradeFilters) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if filters.status is not None:
            conditions.append(col(Order.status) == filters.status)
        if filters.decision is not None:
            conditions.append(col(Order.decision) == filters.decision)
        if filters.rule_id is not None:
            conditions.append(self._flagged(filters.rule_id))
        if filters.provider_id is not None:
            conditions.append(col(Order.provider_organization_id) == filters.provider_id)
        if filters.buyer_id is not None:
            conditions.append(col(Order.buyer_organization_id) == filters.buyer_id)
        if filters.product_id is not None:
            conditions.append(col(Order.product_id) == filters.product_id)
        if filters.since is not None:
            conditions.append(col(Order.created_at) >= filters.since)
        if filters.until is not None:
            conditions.append(col(Order.created_at) < filters.until)
        return conditions

    def _flagged(self, rule_id: str) -> ColumnElement[bool]:
        """The order's `flagged_rules` list holds `rule_id`: jsonb containment on PostgreSQL. On SQLite the
        quoted id inside the stored JSON text, which is exact: the quotes bound an element, so "R1" never
        matches "R10", and callers pass ids of letters, digits, '_', '.' and '-', which JSON never escapes."""
        if self.session.get_bind().dialect.name == "postgresql":
            return type_coerce(col(Order.flagged_rules), JSONB).contains([rule_id])
        return func.instr(col(Order.flagged_rules), f'"{rule_id}"') > 0

    async def trades(self, filters: TradeFilters, *, limit: int, offset: int) -> tuple[Sequence[RowMapping], int]:
        """One page of the matching trades, newest first, and how many match."""
        conditions = self._trade_conditions(filters)
        total = (await self.session.execute(select(func.count()).select_from(Order).where(*conditions))).scalar_one()
        query = (
            select_columns(*TRADE_COLUMNS)
            .where(*conditions)
            .order_by(col(Order.created_at).desc(), col(Order.id))
            .limit(limit)
            .offset(offset)
        )
        return (await self.session.execute(query)).mappings().all(), int(total)

    async def trades_after(self, filters: TradeFilters, after: uuid.UUID | None, limit: int) -> Sequence[RowMapping]:
        """The next `limit` matching trades in id order after the trade `after` (None: from the first):
        keyset pagination over the primary key, so each batch of an export is one index range."""
        conditions = self._trade_conditions(filters)
        if after is not None:
            conditions.append(col(Order.id) > after)
        query = select_columns(*TRADE_COLUMNS).where(*conditions).order_by(col(Order.id)).limit(limit)
        return (await self.session.execute(query)).mappings().all()
