"""Payouts: per provider and currency, a payout is booked (its settled orders claimed, its debt repaid first,
the rest moved to payouts) in one transaction, then sent through the gateway outside any transaction, and
its outcome recorded in another. See `flows.settlement` for why this is safe to run twice, or at once."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.service import AccountService
from marketplace.audit.service import AuditService
from marketplace.events.models import EventType
from marketplace.events.service import EventService
from marketplace.kit import clock
from marketplace.kit.ids import new_id
from marketplace.kit.money import transfer_id
from marketplace.ledger.models import AccountCode, Payout, PayoutStatus, TransferKind
from marketplace.ledger.repository import PayoutRepository
from marketplace.ledger.service import LedgerService
from marketplace.orders.transitions import OrderTransitions
from marketplace.payments.gateway import GatewayError, PaymentGateway, UnknownAccount

log = logging.getLogger("marketplace.settlement")

# Orders one payout claims at most; the provider's next payout takes the rest.
PAYOUT_MAX_ORDERS = 5_000
LOCAL_GATEWAY = "local"

T = TypeVar("T")


async def in_transaction(session: AsyncSession, work: Callable[..., Awaitable[T]], *args: Any) -> T:
    """`work(*args)` in a transaction of its own: committed, or rolled back when it raises."""
    try:
        result = await work(*args)
    except BaseException:
        await session.rollback()
        raise
    await session.commit()
    return result


@dataclass(frozen=True)
class PayoutOutcome:
    """A payout as a run left it."""

    id: uuid.UUID
    organization_id: uuid.UUID
    currency: str
    amount_minor: int
    debt_repaid_minor: int
    status: PayoutStatus
    reference: str | None
    failure: str | None

    @classmethod
    def of(cls, payout: Payout) -> PayoutOutcome:
        return cls(
            id=payout.id,
            organization_id=payout.organization_id,
            currency=payout.currency,
            amount_minor=payout.amount_minor,
            debt_repaid_minor=payout.debt_repaid_minor,
            status=payout.status,
            reference=payout.reference,
            failure=payout.failure,
        )


@dataclass(frozen=True)
class SkippedPayout:
    """A provider whose money could not be paid out in this run; it stays in its payable."""

    organization_id: uuid.UUID
    currency: str
    reason: str


@dataclass(frozen=True)
class _Booked:
    payout: Payout | None
    skipped: SkippedPayout | None = None


class Payouts:
    """Books and sends payouts; commits as it goes (each step is a transaction of its own)."""

    def __init__(
        self,
        session: AsyncSession,
        gateway: PaymentGateway,
        transitions: OrderTransitions,
        ledger: LedgerService,
        accounts: AccountService,
        audit: AuditService,
        events: EventService,
    ) -> None:
        self.session = session
        self.gateway = gateway
        self.transitions = transitions
        self.ledger = ledger
        self.payouts = PayoutRepository(session)
        self.accounts = accounts
        self.audit = audit
        self.events = events

    async def run(self, started: Any, resend_limit: int, actor: str) -> tuple[list[PayoutOutcome], list[SkippedPayout]]:
        """Send the payouts earlier runs left pending, then book and send a payout for every provider and
        currency with money to pay."""
        outcomes: list[PayoutOutcome] = []
        for payout in await self._transaction(self.payouts.pending, started, resend_limit):
            outcomes.append(await self._send(payout, actor))
        skipped: list[SkippedPayout] = []
        for provider_id, currency in await self._transaction(self._to_pay):
            booked = await self._transaction(self._book, provider_id, currency, actor)
            if booked.skipped is not None:
                skipped.append(booked.skipped)
            if booked.payout is not None:
                outcomes.append(await self._send(booked.payout, actor))
        return outcomes, skipped

    async def _transaction(self, work: Callable[..., Awaitable[T]], *args: Any) -> T:
        return await in_transaction(self.session, work, *args)

    async def _to_pay(self) -> list[tuple[uuid.UUID, str]]:
        """Providers and currencies with settled orders not yet claimed, or money in their payable."""
        candidates = await self.transitions.payable_orders() | await self.ledger.holding_payables()
        return sorted(candidates, key=str)

    async def _destination(self, provider_id: uuid.UUID) -> str | SkippedPayout:
        organization = await self.accounts.organization(provider_id)
        if self.gateway.name == LOCAL_GATEWAY:
            return organization.payment_account_id or str(organization.id)
        if not organization.payment_account_id:
            return SkippedPayout(provider_id, "", "the provider has no payout account at the gateway")
        if not organization.payouts_enabled:
            return SkippedPayout(provider_id, "", "the provider's gateway account cannot receive payouts yet")
        return organization.payment_account_id

    async def _book(self, provider_id: uuid.UUID, currency: str, actor: str) -> _Booked:
        """One transaction: the provider's payout in this currency booked (pending), or nothing to pay."""
        destination = await self._destination(provider_id)
        if isinstance(destination, SkippedPayout):
            return _Booked(None, SkippedPayout(provider_id, currency, destination.reason))
        # The lock order of ledger.settlement: the payable first, then the debt.
        payable = await self.ledger.account(AccountCode.PROVIDER_PAYABLE, currency, organization_id=provider_id)
        [payable] = await self.ledger.lock(payable)
        debt = await self.ledger.account(AccountCode.PROVIDER_DEBT, currency, organization_id=provider_id)
        [debt] = await self.ledger.lock(debt)
        held = payable.credits_posted - payable.debits_posted
        owed = max(debt.debits_posted - debt.credits_posted, 0)
        unpaid = await self.transitions.unpaid_shares(provider_id, currency)
        payout_id = new_id()
        claimed = {
            order.id
            for order in await self.transitions.claim_for_payout(provider_id, currency, payout_id, PAYOUT_MAX_ORDERS)
        }
        # What the payable holds beyond the shares of the orders left for later (held by a refund, or
        # beyond this payout's maximum): their money stays for them.
        gross = held - sum(share for order_id, share in unpaid.items() if order_id not in claimed)
        if gross < 0:
            log.error(
                "provider %s: payable %s %s holds less than its settled orders' shares", provider_id, held, currency
            )
            return _Booked(None, SkippedPayout(provider_id, currency, "the payable holds less than its orders' shares"))
        if gross == 0:
            if claimed:  # free orders only: nothing to send
                await self.transitions.mark_paid_out(payout_id, actor, unlink=True)
            return _Booked(None)
        repaid = min(owed, gross)
        amount = gross - repaid
        now = clock.now()
        payout = Payout(
            id=payout_id,
            organization_id=provider_id,
            currency=currency,
            amount_minor=amount,
            debt_repaid_minor=repaid,
            gateway=self.gateway.name,
            destination=destination,
            status=PayoutStatus.PENDING if amount else PayoutStatus.SENT,
            created_at=now,
            sent_at=None if amount else now,
        )
        await self.payouts.insert(payout)
        if repaid:
            await self.ledger.post(transfer_id(payout_id, "debt"), payable, debt, repaid, currency, TransferKind.DEBT)
        if amount:
            payouts = await self.ledger.account(AccountCode.PAYOUTS, currency, organization_id=provider_id)
            await self.ledger.post(
                transfer_id(payout_id, "payout"), payable, payouts, amount, currency, TransferKind.PAYOUT
            )
        await self._audit(actor, "payout.booked", payout, orders=len(claimed))
        if not amount:  # all of it repaid the provider's debt: nothing to send
            await self.transitions.mark_paid_out(payout_id, actor)
        return _Booked(payout)

    async def _send(self, payout: Payout, actor: str) -> PayoutOutcome:
        """Ask the gateway for the transfer (outside any transaction), then record what it said."""
        if payout.status != PayoutStatus.PENDING:
            return PayoutOutcome.of(payout)
        try:
            reference = await self.gateway.transfer(
                payout_id=payout.id,
                destination=payout.destination,
                amount_minor=payout.amount_minor,
                currency=payout.currency,
                transfer_group=None,
            )
        except UnknownAccount as exc:
            log.warning("payout %s failed: %s", payout.id, exc)
            return await self._transaction(self._fail, payout, str(exc), actor)
        except GatewayError as exc:
            log.warning("payout %s not sent, left pending: %s", payout.id, exc)
            return await self._transaction(self._note_failure, payout, str(exc))
        return await self._transaction(self._sent, payout, reference, actor)

    async def _sent(self, payout: Payout, reference: str, actor: str) -> PayoutOutcome:
        if await self.payouts.finish(
            payout.id, PayoutStatus.SENT, reference=reference, sent_at=clock.now(), failure=None
        ):
            await self.transitions.mark_paid_out(payout.id, actor)
            current = await self._current(payout.id)
            await self._audit(actor, "payout.sent", current)
            await self._event(EventType.PAYOUT_SENT, current)
            return PayoutOutcome.of(current)
        return PayoutOutcome.of(await self._current(payout.id))

    async def _fail(self, payout: Payout, failure: str, actor: str) -> PayoutOutcome:
        """The gateway does not know the destination: nothing was sent. The booking is reversed (the debt
        repaid stays owed) and the claimed orders wait for the next payout."""
        if await self.payouts.finish(payout.id, PayoutStatus.FAILED, failure=failure[:500]):
            await self.transitions.release_payout_claim(payout.id)
            currency, provider_id = payout.currency, payout.organization_id
            payable = await self.ledger.account(AccountCode.PROVIDER_PAYABLE, currency, organization_id=provider_id)
            [payable] = await self.ledger.lock(payable)
            if payout.amount_minor:
                payouts = await self.ledger.account(AccountCode.PAYOUTS, currency, organization_id=provider_id)
                await self.ledger.post(
                    transfer_id(payout.id, "payout-reversal"),
                    payouts,
                    payable,
                    payout.amount_minor,
                    currency,
                    TransferKind.REVERSAL,
                )
            if payout.debt_repaid_minor:
                debt = await self.ledger.account(AccountCode.PROVIDER_DEBT, currency, organization_id=provider_id)
                await self.ledger.post(
                    transfer_id(payout.id, "debt-reversal"),
                    debt,
                    payable,
                    payout.debt_repaid_minor,
                    currency,
                    TransferKind.REVERSAL,
                )
            current = await self._current(payout.id)
            await self._audit(actor, "payout.failed", current)
            await self._event(EventType.PAYOUT_FAILED, current)
            return PayoutOutcome.of(current)
        return PayoutOutcome.of(await self._current(payout.id))

    async def _note_failure(self, payout: Payout, failure: str) -> PayoutOutcome:
        await self.payouts.note_failure(payout.id, failure[:500])
        return PayoutOutcome.of(await self._current(payout.id))

    async def _current(self, payout_id: uuid.UUID) -> Payout:
        payout = await self.payouts.get(payout_id)
        assert payout is not None
        return payout

    async def _audit(self, actor: str, action: str, payout: Payout, **extra: object) -> None:
        await self.audit.record(
            actor=actor,
            action=action,
            object_type="payout",
            object_id=payout.id,
            payload={
                "organization_id": str(payout.organization_id),
                "currency": payout.currency,
                "amount_minor": payout.amount_minor,
                "debt_repaid_minor": payout.debt_repaid_minor,
                "gateway": payout.gateway,
                "destination": payout.destination,
                "status": payout.status.value,
                "reference": payout.reference,
                "failure": payout.failure,
                **extra,
            },
        )

    async def _event(self, event_type: EventType, payout: Payout) -> None:
        """The payout's event, for the provider paid (where it goes and why it failed stay in the audit)."""
        await self.events.record(
            event_type,
            subject_type="payout",
            subject_id=payout.id,
            parties=[payout.organization_id],
            payload={
                "payout_id": str(payout.id),
                "organization_id": str(payout.organization_id),
                "currency": payout.currency,
                "amount_minor": payout.amount_minor,
                "debt_repaid_minor": payout.debt_repaid_minor,
                "status": payout.status.value,
            },
        )
