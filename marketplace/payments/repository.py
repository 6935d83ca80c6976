"""Every query on the payments domain's tables: the webhook inbox, a buyer's saved payment method, and the
payment columns of an organisation (its connected account and whether payouts to it are enabled)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from marketplace.accounts.models import Organization
from marketplace.payments.models import SavedPaymentMethod, WebhookEvent, WebhookOutcome


class PaymentsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _insert(self) -> Any:
        """INSERT with ON CONFLICT, in the dialect of the session's database."""
        return postgresql.insert if self.session.get_bind().dialect.name == "postgresql" else sqlite.insert

    async def record_event(self, *, event_id: str, gateway: str, type: str, object_id: str, at: datetime) -> bool:
        """Insert the event into the inbox; False when it is there already (nothing written).

        A concurrent delivery of the same event waits on the primary key until the first one's
        transaction ends, then finds it (or, if that one rolled back, records it itself)."""
        insert = (
            self._insert()(WebhookEvent)
            .values(id=event_id, gateway=gateway, type=type, object_id=object_id, received_at=at)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(col(WebhookEvent.id))
        )
        return (await self.session.execute(insert)).first() is not None

    async def finish_event(self, event_id: str, outcome: WebhookOutcome, at: datetime) -> None:
        await self.session.execute(
            update(WebhookEvent)
            .where(col(WebhookEvent.id) == event_id)
            .values(outcome=outcome, processed_at=at if outcome == WebhookOutcome.PROCESSED else None)
        )

    async def get_event(self, event_id: str) -> WebhookEvent | None:
        return (await self.session.scalars(select(WebhookEvent).where(col(WebhookEvent.id) == event_id))).first()

    async def set_payment_account(self, organization_id: uuid.UUID, account_id: str, payouts_enabled: bool) -> None:
        await self.session.execute(
            update(Organization)
            .where(col(Organization.id) == organization_id)
            .values(payment_account_id=account_id, payouts_enabled=payouts_enabled)
        )

    async def saved_method(self, organization_id: uuid.UUID, gateway: str) -> SavedPaymentMethod | None:
        return await self.session.get(SavedPaymentMethod, (organization_id, gateway), populate_existing=True)

    async def save_setup(
        self, organization_id: uuid.UUID, gateway: str, customer: str, reference: str, at: datetime
    ) -> None:
        """The buyer's customer and the setup it was last asked for (the method saved before stays until it
        succeeds)."""
        values = {"customer": customer, "setup_reference": reference, "updated_at": at}
        insert = (
            self._insert()(SavedPaymentMethod)
            .values(organization_id=organization_id, gateway=gateway, **values)
            .on_conflict_do_update(index_elements=["organization_id", "gateway"], set_=values)
        )
        await self.session.execute(insert)

    async def save_method(
        self, organization_id: uuid.UUID, gateway: str, customer: str, method: str, at: datetime
    ) -> bool:
        """Record the method a setup of the buyer's customer saved; False when the buyer has no such customer."""
        result: Any = await self.session.execute(
            update(SavedPaymentMethod)
            .where(
                col(SavedPaymentMethod.organization_id) == organization_id,
                col(SavedPaymentMethod.gateway) == gateway,
                col(SavedPaymentMethod.customer) == customer,
            )
            .values(payment_method=method, updated_at=at)
        )
        return bool(result.rowcount)
