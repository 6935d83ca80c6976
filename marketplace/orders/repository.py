"""Every query on the orders tables. Status changes are guarded UPDATE statements: the row moves
only from the statuses the transition allows, so a replayed or concurrent request changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, or_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from marketplace.kit import clock
from marketplace.orders.models import ESCROW_STATUSES, Order, OrderEvent, OrderStatus


class OrderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert(self, values: dict[str, Any]) -> None:
        """One INSERT, no ORM unit of work: order placement is the hot path."""
        await self.session.execute(insert(Order).values(**values))

    async def add_event(
        self,
        order_id: uuid.UUID,
        from_status: OrderStatus | None,
        to_status: OrderStatus,
        actor: str,
        reason: str | None,
    ) -> None:
        await self.session.execute(
            insert(OrderEvent).values(
                id=uuid.uuid4(),
                order_id=order_id,
                from_status=from_status,
                to_status=to_status,
                actor=actor,
                reason=reason,
                at=clock.now(),
            )
        )

    async def get(self, order_id: uuid.UUID) -> Order | None:
        query = select(Order).where(col(Order.id) == order_id).execution_options(populate_existing=True)
        return (await self.session.scalars(query)).first()

    async def by_payment_reference(self, reference: str) -> Order | None:
        query = select(Order).where(col(Order.payment_reference) == reference).execution_options(populate_existing=True)
        return (await self.session.scalars(query)).first()

    async def move(self, order_id: uuid.UUID, from_status: OrderStatus, to: OrderStatus, **values: Any) -> bool:
        """Move the order from `from_status` to `to`; False (nothing changed) when it is no longer in
        `from_status`: another request moved it first."""
        statement = (
            update(Order)
            .where(col(Order.id) == order_id, col(Order.status) == from_status)
            .values(status=to, status_changed_at=clock.now(), **values)
        )
        return bool((await self.session.execute(statement)).rowcount)  # type: ignore[attr-defined]

    async def set_values(self, order_id: uuid.UUID, status: OrderStatus, **values: Any) -> bool:
        """Change fields of an order while it is in `status`."""
        statement = update(Order).where(col(Order.id) == order_id, col(Order.status) == status).values(**values)
        return bool((await self.session.execute(statement)).rowcount)  # type: ignore[attr-defined]

    async def events(self, order_id: uuid.UUID) -> Sequence[OrderEvent]:
        query = select(OrderEvent).where(col(OrderEvent.order_id) == order_id).order_by(col(OrderEvent.at))
        return (await self.session.scalars(query)).all()

    # lists

    async def visible_to(
        self,
        organization_ids: Collection[uuid.UUID] | None,
        *,
        status: OrderStatus | None,
        limit: int,
        offset: int,
    ) -> tuple[Sequence[Order], int]:
        """Orders where one of `organization_ids` buys or provides (None: every order, for administrators)."""
        conditions: list[Any] = []
        if organization_ids is not None:
            ids = list(organization_ids)
            conditions.append(
                or_(col(Order.buyer_organization_id).in_(ids), col(Order.provider_organization_id).in_(ids))
            )
        if status is not None:
            conditions.append(col(Order.status) == status)
        total = (await self.session.execute(select(func.count()).select_from(Order).where(*conditions))).scalar_one()
        query = (
            select(Order)
            .where(*conditions)
            .order_by(col(Order.created_at).desc(), col(Order.id))
            .limit(limit)
            .offset(offset)
        )
        return (await self.session.scalars(query)).all(), total

    async def due(self, status: OrderStatus, changed_before: datetime, limit: int) -> Sequence[uuid.UUID]:
        """Orders in `status` since before `changed_before`, oldest first."""
        query = (
            select(col(Order.id))
            .where(col(Order.status) == status, col(Order.status_changed_at) < changed_before)
            .order_by(col(Order.status_changed_at))
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    async def escrow_held(self) -> dict[tuple[uuid.UUID, str], int]:
        """What each order holding its buyer's money should have in escrow."""
        query = select(col(Order.id), col(Order.currency), col(Order.amount_minor)).where(
            col(Order.status).in_(list(ESCROW_STATUSES)), col(Order.amount_minor) > 0
        )
        return {(row[0], row[1]): row[2] for row in (await self.session.execute(query)).all()}
