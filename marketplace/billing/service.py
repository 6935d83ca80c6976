"""Billing use cases: make a licence's statements and renewals (once per licence and period), move them as their
collection goes, and show statements to their parties. Never commits; moves no money (the billing flow does)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.principal import Principal
from marketplace.accounts.service import AccountService
from marketplace.audit.service import AuditService
from marketplace.billing.models import COLLECTABLE, Charge, ChargeStatus, SubscriptionRenewal, UsageStatement
from marketplace.billing.repository import BillingRepository, ClosedUsage, DueRenewal, month_bounds
from marketplace.delivery.models import LicenceStatus
from marketplace.errors import NotFound
from marketplace.events.models import EventType
from marketplace.events.service import EventService
from marketplace.kit import clock
from marketplace.kit.i18n import Message

C = TypeVar("C", bound=Charge)

# The event of a statement's move to each status.
_STATEMENT_EVENTS = {
    ChargeStatus.ISSUED: EventType.USAGE_STATEMENT_ISSUED,
    ChargeStatus.PAID: EventType.USAGE_STATEMENT_PAID,
    ChargeStatus.FAILED: EventType.USAGE_STATEMENT_FAILED,
}


class BillingService:
    def __init__(
        self, session: AsyncSession, accounts: AccountService, audit: AuditService, events: EventService
    ) -> None:
        self.repository = BillingRepository(session)
        self.accounts = accounts
        self.audit = audit
        self.events = events

    # making

    async def closed_usage(self, before_period: str, licence_id: uuid.UUID | None, limit: int) -> list[ClosedUsage]:
        return await self.repository.closed_usage(before_period, licence_id, limit)

    async def issue_statement(self, usage: ClosedUsage) -> UsageStatement | None:
        """The statement of a licence's month: its calls, the billed ones and their amount; None when another
        run issued it first. A month that billed nothing is paid as it is issued. Its records come after
        (`record_issued`), once the transaction has made its rows."""
        licence, now = usage.licence, clock.now()
        start, end = month_bounds(usage.period)
        statement = UsageStatement(
            licence_id=licence.id,
            order_id=licence.order_id,
            buyer_organization_id=licence.buyer_organization_id,
            provider_organization_id=licence.provider_organization_id,
            period=usage.period,
            period_start=start,
            period_end=end,
            calls=usage.calls,
            billable_calls=await self.repository.billable_calls(licence.id, start, end),
            amount_minor=usage.billed_minor,
            currency=usage.currency,
            fee_bps=usage.fee_bps,
            status=ChargeStatus.ISSUED if usage.billed_minor else ChargeStatus.PAID,
            created_at=now,
            paid_at=None if usage.billed_minor else now,
            settled_at=None if usage.billed_minor else now,
        )
        return statement if await self.repository.add(statement, ["licence_id", "period"]) else None

    async def record_issued(self, statement: UsageStatement, actor: str) -> None:
        await self._record(statement, ChargeStatus.ISSUED, actor, "usage_statement.issued")
        if statement.status == ChargeStatus.PAID:
            await self._record(statement, ChargeStatus.PAID, actor, "usage_statement.paid")

    async def due_renewals(self, now: datetime, limit: int) -> list[DueRenewal]:
        return await self.repository.due_renewals(now, limit)

    async def open_renewal(self, due: DueRenewal) -> SubscriptionRenewal | None:
        """The renewal of a subscription licence's next period, at the price its order paid; None when another
        run opened it first."""
        licence = due.licence
        assert licence.ends_at is not None, "the query finds licences that end"
        assert licence.renewal_days is not None, "the query finds licences that renew"
        renewal = SubscriptionRenewal(
            licence_id=licence.id,
            order_id=licence.order_id,
            buyer_organization_id=licence.buyer_organization_id,
            provider_organization_id=licence.provider_organization_id,
            period_start=licence.ends_at,
            period_end=licence.ends_at + timedelta(days=licence.renewal_days),
            amount_minor=due.amount_minor,
            currency=due.currency,
            fee_bps=due.fee_bps,
            status=ChargeStatus.ISSUED,
            created_at=clock.now(),
        )
        return renewal if await self.repository.add(renewal, ["licence_id", "period_start"]) else None

    async def record_opened(self, renewal: SubscriptionRenewal, actor: str) -> None:
        await self._audit(renewal, actor, "subscription_renewal.issued")

    # collecting

    async def due(self, model: type[C], now: datetime, limit: int) -> Sequence[C]:
        return await self.repository.due(model, now, limit)

    async def lock(self, model: type[C], charge_id: uuid.UUID) -> C | None:
        return await self.repository.lock(model, charge_id)

    async def paid(self, charge: Charge, gateway: str, reference: str) -> bool:
        """The charge collected, once: False when another run recorded its outcome first."""
        now = clock.now()
        values = {"status": ChargeStatus.PAID, "paid_at": now, "gateway": gateway, "payment_reference": reference}
        if not await self.repository.move(charge, COLLECTABLE, **values, next_attempt_at=None, failure=None):
            return False
        charge.status, charge.paid_at, charge.gateway, charge.payment_reference = (
            ChargeStatus.PAID,
            now,
            gateway,
            reference,
        )
        return True

    async def record_paid(self, charge: Charge, actor: str) -> None:
        """The audit entry and event of a collected charge (last in its transaction)."""
        await self._record(charge, ChargeStatus.PAID, actor, f"{_kind(charge)}.paid")

    async def failed(self, charge: Charge, gateway: str, failure: str, retry_at: datetime, actor: str) -> bool:
        """An attempt declined: counted, and the next one set for `retry_at`; False when another run recorded
        this attempt's outcome first."""
        now = clock.now()
        values: dict[str, Any] = {
            "status": ChargeStatus.FAILED,
            "attempts": charge.attempts + 1,
            "next_attempt_at": retry_at,
            "failed_since": charge.failed_since or now,
            "gateway": gateway,
            "payment_reference": None,
            "failure": failure[:500],
        }
        if not await self.repository.move(charge, COLLECTABLE, **values):
            return False
        for name, value in values.items():
            setattr(charge, name, value)
        await self._record(charge, ChargeStatus.FAILED, actor, f"{_kind(charge)}.failed")
        return True

    async def waiting(self, charge: Charge, gateway: str, reference: str) -> None:
        """The gateway has not decided yet: the payment to look at again next time."""
        await self.repository.move(charge, COLLECTABLE, gateway=gateway, payment_reference=reference)

    async def lapse(self, renewal: SubscriptionRenewal) -> bool:
        """A renewal never to be paid (its licence expired or revoked): it is no longer collected. Its audit entry
        comes after (`record_lapsed`), once the transaction has moved its rows."""
        if not await self.repository.move(renewal, COLLECTABLE, status=ChargeStatus.LAPSED, next_attempt_at=None):
            return False
        renewal.status = ChargeStatus.LAPSED
        return True

    async def record_lapsed(self, renewal: SubscriptionRenewal, actor: str) -> None:
        await self._audit(renewal, actor, "subscription_renewal.lapsed")

    async def overdue(self, model: type[C], since_before: datetime, licence_status: LicenceStatus) -> Sequence[C]:
        return await self.repository.overdue(model, since_before, licence_status)

    async def unpaid_of(self, licence_id: uuid.UUID) -> int:
        return await self.repository.unpaid_of(licence_id)

    # settling

    async def to_settle(self, model: type[C], limit: int) -> Sequence[C]:
        return await self.repository.to_settle(model, limit)

    async def settled(self, charge: Charge, split: dict[str, int], actor: str) -> bool:
        if not await self.repository.mark_settled(charge, clock.now()):
            return False
        await self._audit(charge, actor, f"{_kind(charge)}.settled", **split)
        return True

    # reading

    async def statements(
        self,
        principal: Principal,
        licence_id: uuid.UUID | None,
        status: ChargeStatus | None,
        *,
        limit: int,
        offset: int,
    ) -> tuple[list[UsageStatement], int]:
        """The statements of the caller's organisations, as buyer or provider (an administrator's token: all)."""
        organizations = None
        if not (principal.is_admin and not principal.is_api_key):
            organizations = set(await self.accounts.member_organization_ids(principal))
        rows, total = await self.repository.statements_of(organizations, licence_id, status, limit=limit, offset=offset)
        return list(rows), total

    async def statement(self, principal: Principal, statement_id: uuid.UUID) -> UsageStatement:
        """A statement its buyer, its provider or an administrator may read; it does not exist for anyone else."""
        statement = await self.repository.get(UsageStatement, statement_id)
        if statement is None:
            raise NotFound(Message("billing.statement-not-found", "usage statement not found"))
        for organization_id in (statement.buyer_organization_id, statement.provider_organization_id):
            if await self.accounts.can_see(principal, organization_id):
                return statement
        raise NotFound(Message("billing.statement-not-found", "usage statement not found"))

    # the books

    async def expected_usage(self) -> tuple[dict[tuple[uuid.UUID, str], int], dict[tuple[uuid.UUID, str], int]]:
        """What each buyer owes per currency (every metered call billed, less the statements collected) and what
        each order's accrued usage holds (its calls billed, less the statements settled to its provider)."""
        owed: dict[tuple[uuid.UUID, str], int] = {}
        held: dict[tuple[uuid.UUID, str], int] = {}
        for buyer_id, order_id, currency, billed in await self.repository.billed():
            owed[buyer_id, currency] = owed.get((buyer_id, currency), 0) + billed
            held[order_id, currency] = held.get((order_id, currency), 0) + billed
        for buyer_id, order_id, currency, collected, settled in await self.repository.collected():
            owed[buyer_id, currency] = owed.get((buyer_id, currency), 0) - collected
            held[order_id, currency] = held.get((order_id, currency), 0) - settled
        return {k: v for k, v in owed.items() if v}, {k: v for k, v in held.items() if v}

    async def renewal_escrow(self) -> dict[tuple[uuid.UUID, str], int]:
        """What each renewal's escrow holds: paid, not yet settled."""
        return await self.repository.renewal_escrow()

    # recording

    async def _record(self, charge: Charge, status: ChargeStatus, actor: str, action: str) -> None:
        await self._audit(charge, actor, action)
        if isinstance(charge, UsageStatement):
            await self.events.record(
                _STATEMENT_EVENTS[status],
                subject_type="usage_statement",
                subject_id=charge.id,
                parties=[charge.buyer_organization_id, charge.provider_organization_id],
                payload=statement_payload(charge),
            )

    async def _audit(self, charge: Charge, actor: str, action: str, **extra: int) -> None:
        await self.audit.record(
            actor=actor,
            action=action,
            object_type=_kind(charge),
            object_id=charge.id,
            payload={
                "licence_id": str(charge.licence_id),
                "period_start": charge.period_start.isoformat(),
                "amount_minor": charge.amount_minor,
                "currency": charge.currency,
                "status": charge.status.value,
                "attempts": charge.attempts,
                **extra,
            },
        )


def statement_payload(statement: UsageStatement) -> dict[str, Any]:
    """A statement's public state, as its events carry it: ids, the month, the counts and the money."""
    return {
        "statement_id": str(statement.id),
        "licence_id": str(statement.licence_id),
        "order_id": str(statement.order_id),
        "buyer_organization_id": str(statement.buyer_organization_id),
        "provider_organization_id": str(statement.provider_organization_id),
        "period": statement.period,
        "calls": statement.calls,
        "billable_calls": statement.billable_calls,
        "amount_minor": statement.amount_minor,
        "currency": statement.currency,
        "status": statement.status.value,
        "attempts": statement.attempts,
    }


def _kind(charge: Charge) -> str:
    return "usage_statement" if isinstance(charge, UsageStatement) else "subscription_renewal"
