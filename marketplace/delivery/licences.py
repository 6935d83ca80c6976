"""Licences: issued when an order is paid, revoked when its money goes back or a later verdict fails.

The payment, dispute and refund flows call this service from inside an order's transitions (it runs in their
transaction, after the order's row and ledger accounts are locked), so it reads no order: it is handed one."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.audit.service import AuditService
from marketplace.delivery.models import Licence, LicenceStatus
from marketplace.delivery.repository import DeliveryRepository
from marketplace.events.models import EventType
from marketplace.events.service import EventService
from marketplace.kit import clock
from marketplace.orders.models import Order

# A licence that has not ended may be stopped; one that has ended stays as it ended.
LIVE = frozenset({LicenceStatus.ACTIVE, LicenceStatus.SUSPENDED})
TERM_ENDED = "the licence term has ended"
# The event of a live licence's move to each status (active again: out of a suspension).
_STATUS_EVENTS = {
    LicenceStatus.ACTIVE: EventType.LICENCE_REINSTATED,
    LicenceStatus.SUSPENDED: EventType.LICENCE_SUSPENDED,
    LicenceStatus.REVOKED: EventType.LICENCE_REVOKED,
    LicenceStatus.EXPIRED: EventType.LICENCE_EXPIRED,
}


class LicenceFacts(Protocol):
    """What a licence's audit entry and event name: a Licence, or a row of its table."""

    id: uuid.UUID
    order_id: uuid.UUID
    status: LicenceStatus
    buyer_organization_id: uuid.UUID
    provider_organization_id: uuid.UUID
    product_id: uuid.UUID
    delivery_mode: str
    ends_at: datetime | None


def licence_end(starts_at: datetime, terms: dict[str, Any], period_days: int | None) -> datetime | None:
    """The licence ends after the shorter of the licence terms' `term_days` and a subscription's period;
    neither set: it does not end."""
    days = [d for d in (terms.get("term_days"), period_days) if isinstance(d, int) and d > 0]
    return starts_at + timedelta(days=min(days)) if days else None


class LicenceService:
    def __init__(self, session: AsyncSession, audit: AuditService, events: EventService) -> None:
        self.repository = DeliveryRepository(session)
        self.audit = audit
        self.events = events

    async def issue(
        self, order: Order, terms: dict[str, Any], period_days: int | None, actor: str, *, renews: bool = False
    ) -> Licence:
        """The order's licence, from the licence terms of the version bought (copied: a later edit of the
        product changes nothing sold); a subscription's (`renews`) renews every `period_days`. Issuing twice
        returns the first one."""
        now = clock.now()
        licence_id = uuid.uuid4()
        licence = await self.repository.add_licence(
            Licence(
                id=licence_id,
                order_id=order.id,
                buyer_organization_id=order.buyer_organization_id,
                provider_organization_id=order.provider_organization_id,
                product_id=order.product_id,
                product_version_id=order.product_version_id,
                plan_id=order.plan_id,
                delivery_mode=order.delivery_mode,
                terms=terms,
                starts_at=now,
                ends_at=licence_end(now, terms, period_days),
                renewal_days=period_days if renews else None,
                status=LicenceStatus.ACTIVE,
                created_at=now,
                updated_at=now,
            )
        )
        if licence.id == licence_id:
            await self.audit.record(
                actor=actor,
                action="licence.issued",
                object_type="licence",
                object_id=licence.id,
                payload={
                    "order_id": str(order.id),
                    "delivery_mode": licence.delivery_mode,
                    "ends_at": licence.ends_at.isoformat() if licence.ends_at else None,
                },
            )
            await self._event(EventType.LICENCE_GRANTED, licence, licence.status)
        return licence

    async def get(self, licence_id: uuid.UUID) -> Licence:
        licence = await self.repository.licence(licence_id)
        assert licence is not None
        return licence

    async def revoke_for_order(self, order_id: uuid.UUID, reason: str, actor: str) -> None:
        """Revoke the order's licence, if it has a live one (an order refunded before payment has none)."""
        licence = await self.repository.licence_of_order(order_id)
        if licence is not None:
            await self.change(licence, LicenceStatus.REVOKED, reason, actor)

    async def expire_due(self, limit: int, actor: str) -> int:
        """Expire up to `limit` live licences whose term has ended, each with its audit entry and event; how many.
        A subscription's licence is left to its renewal (marketplace/flows/billing.py), which expires it if unpaid.
        The licences are locked first and each change is guarded, so concurrent expiries expire each one once;
        the audit entries and events come last, after every licence moved (plain inserts: they lock nothing
        another writer waits for)."""
        moved = []
        for licence in await self.repository.due_to_expire(LIVE, clock.now(), limit):
            if await self._move(licence.id, licence.status, LicenceStatus.EXPIRED, TERM_ENDED):
                moved.append(licence)
        for licence in moved:
            await self._record(licence, LicenceStatus.EXPIRED, TERM_ENDED, actor)
        return len(moved)

    async def extend(self, licence: Licence, period_end: datetime, actor: str) -> bool:
        """A subscription renewed: the licence runs on to `period_end`, once (a guarded update from the end it
        had, so a renewal applied twice extends it once), with its audit entry and event."""
        if licence.ends_at is None or licence.ends_at >= period_end:
            return False
        if not await self.repository.extend_licence(licence.id, licence.ends_at, period_end):
            return False
        await self.audit.record(
            actor=actor,
            action="licence.renewed",
            object_type="licence",
            object_id=licence.id,
            payload={
                "order_id": str(licence.order_id),
                "from": licence.ends_at.isoformat(),
                "to": period_end.isoformat(),
            },
        )
        licence.ends_at = period_end
        await self._event(EventType.LICENCE_RENEWED, licence, licence.status)
        return True

    async def prune_rate_windows(self, before: datetime) -> int:
        """Forget the calls counted in minutes that started before `before` (the limits read the current one)."""
        return await self.repository.prune_rate_windows(before)

    async def change_each(self, licences: list[Licence], to: LicenceStatus, reason: str, actor: str) -> int:
        """`change` for several licences: every move first, then their audit entries and events (as `expire_due`
        records them); how many moved."""
        moved = [licence for licence in licences if await self._move(licence.id, licence.status, to, reason)]
        for licence in moved:
            await self._record(licence, to, reason, actor)
            licence.status, licence.status_reason = to, reason
        return len(moved)

    async def change(self, licence: Licence, to: LicenceStatus, reason: str, actor: str) -> bool:
        """Move a live licence to `to` (revoked, suspended, expired or active again); its API access keys
        stop working unless it is active. False when it was no longer live."""
        if not await self._move(licence.id, licence.status, to, reason):
            return False
        await self._record(licence, to, reason, actor)
        licence.status, licence.status_reason = to, reason
        return True

    async def _move(self, licence_id: uuid.UUID, status: LicenceStatus, to: LicenceStatus, reason: str) -> bool:
        """The guarded change of a licence from `status`; its access keys revoked unless it becomes active."""
        allowed = LIVE - {to}
        if status not in allowed or not await self.repository.set_licence_status(licence_id, allowed, to, reason):
            return False
        if to != LicenceStatus.ACTIVE:
            await self.repository.revoke_access_keys(licence_id)
        return True

    async def _record(self, licence: LicenceFacts, to: LicenceStatus, reason: str, actor: str) -> None:
        """A licence's move from its `status`, once made: its audit entry, then its event."""
        await self.audit.record(
            actor=actor,
            action=f"licence.{to.value}",
            object_type="licence",
            object_id=licence.id,
            payload={"order_id": str(licence.order_id), "from": licence.status.value, "reason": reason},
        )
        await self._event(_STATUS_EVENTS[to], licence, to)

    async def _event(self, event_type: EventType, licence: LicenceFacts, status: LicenceStatus) -> None:
        """The licence's event, for its buyer and provider."""
        await self.events.record(
            event_type,
            subject_type="licence",
            subject_id=licence.id,
            parties=[licence.buyer_organization_id, licence.provider_organization_id],
            payload={
                "licence_id": str(licence.id),
                "order_id": str(licence.order_id),
                "product_id": str(licence.product_id),
                "buyer_organization_id": str(licence.buyer_organization_id),
                "provider_organization_id": str(licence.provider_organization_id),
                "delivery_mode": licence.delivery_mode,
                "status": status.value,
                "ends_at": licence.ends_at.isoformat() if licence.ends_at else None,
            },
        )
