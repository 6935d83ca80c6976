"""Settlement: the batch that settles completed orders and pays providers out (`marketplace settle`,
`POST /api/v1/admin/settlements`).

A run is a sequence of short transactions (the service commits as it goes):

1. the sweep: unpaid orders time out, unconfirmed deliveries complete (`OrderService.sweep`);
2. completed orders settle, oldest first, in batches: each moves to settled, its escrow split into the
   provider's payable (price - fee) and the platform's revenue (the fee; `kit.money.split` rounds it
   half up) (`OrderService.settle_completed`);
3. payouts left pending by earlier runs are sent again;
4. per provider and currency with money to pay: a payout is booked, then sent through the gateway.

Safe to run twice, or twice at once. Nothing depends on a run remembering what another did:

- An order settles by a guarded update completed -> settled of a row the run has locked (`FOR UPDATE
  SKIP LOCKED`: concurrent runs take different orders and never wait for each other, and an order a
  refund holds is left for later), in the same transaction as its transfers, whose ids derive from the
  order (`transfer_id(order.id, "settlement")`, `(order.id, "fee")`): a later run finds no completed
  order, and a transfer posted again would be a no-op.
- A payout is booked in one transaction that first locks the provider's payable account, so a
  provider's payouts are booked one at a time and nothing is credited to or taken from its payable
  meanwhile. It claims the provider's settled orders (`trade_order.payout_id`; orders others hold are
  skipped), repays the provider's debt first (payable -> provider_debt) and books the rest (payable ->
  payouts), with transfer ids derived from the payout's id, and inserts the payout `pending`. What it
  pays is what the payable holds, less the shares of the settled orders it did not claim: a claimed
  order is paid once, by the payout that claimed it.

Where the gateway call sits: after the booking has committed, outside any transaction, so no lock is
held while the network is waited for, and a crash after the transfer cannot roll the booking back.
The call carries the payout's id, from which the gateway derives its idempotency key (Stripe:
`payout-<id>`): sending the same pending payout again (after a crash or a timeout, or from a
concurrent run) never pays twice. The outcome is recorded in a new transaction: `sent` with the
gateway's reference (the claimed orders move to paid_out), or `failed` when the gateway does not know
the destination (the booking is reversed and the orders are freed for the next payout). Any other
gateway error leaves the payout pending, and the next run sends it again under the same id. Caveat:
Stripe remembers an idempotency key for 24 hours, so a payout should not stay pending longer than
that (run settlement at least daily); one older than that should be checked at the gateway first.

With a gateway other than the local one, a provider without a connected account, or whose account
cannot receive payouts, is skipped and reported; its money stays in its payable."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.service import AccountService
from marketplace.audit.service import AuditService
from marketplace.compliance.rulebook import Rulebook
from marketplace.config import Settings
from marketplace.kit import clock
from marketplace.kit.ids import new_id
from marketplace.kit.money import transfer_id
from marketplace.ledger.models import AccountCode, Payout, PayoutStatus, TransferKind
from marketplace.ledger.repository import PayoutRepository
from marketplace.ledger.service import LedgerService
from marketplace.orders.service import OrderService
from marketplace.payments.gateway import GatewayError, PaymentGateway, UnknownAccount

log = logging.getLogger("marketplace.settlement")

# Completed orders settled per transaction; a run goes on until none is left. Small, because every order
# updates the same few rows (its provider's payable, the revenue account, the audit head), and PostgreSQL
# updates a row that one transaction has already updated many times ever more slowly.
SETTLEMENT_BATCH = 50
# Orders one payout claims at most; the provider's next payout takes the rest.
PAYOUT_MAX_ORDERS = 5_000
# Pending payouts of earlier runs sent again per run at most.
RESEND_LIMIT = 1_000
LOCAL_GATEWAY = "local"

T = TypeVar("T")


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
class SettlementReport:
    settled_orders: int
    payouts: list[PayoutOutcome] = field(default_factory=list)
    skipped: list[SkippedPayout] = field(default_factory=list)
    cancelled_orders: int = 0
    auto_confirmed_orders: int = 0


@dataclass(frozen=True)
class _Booked:
    payout: Payout | None
    skipped: SkippedPayout | None = None


class SettlementService:
    def __init__(self, session: AsyncSession, settings: Settings, gateway: PaymentGateway, rulebook: Rulebook) -> None:
        self.session = session
        self.settings = settings
        self.gateway = gateway
        self.orders = OrderService(session, settings, rulebook, gateway)
        self.ledger = LedgerService(session)
        self.payouts = PayoutRepository(session)
        self.accounts = AccountService(session)
        self.audit = AuditService(session)

    async def run(self, actor: str) -> SettlementReport:
        """Sweep, settle every completed order, send the payouts still pending, book and send new ones.
        Commits as it goes: whatever a failure interrupts, the next run takes up."""
        await self.session.commit()  # whatever the caller read so far; each step below is a transaction
        started = clock.now()
        sweep = await self._transaction(self.orders.sweep)
        settled = 0
        while True:
            batch = await self._transaction(self.orders.settle_completed, SETTLEMENT_BATCH, actor)
            settled += len(batch)
            if len(batch) < SETTLEMENT_BATCH:
                break
        outcomes: list[PayoutOutcome] = []
        for payout in await self._transaction(self.payouts.pending, started, RESEND_LIMIT):
            outcomes.append(await self._send(payout, actor))
        skipped: list[SkippedPayout] = []
        for provider_id, currency in await self._transaction(self._to_pay):
            booked = await self._transaction(self._book, provider_id, currency, actor)
            if booked.skipped is not None:
                skipped.append(booked.skipped)
            if booked.payout is not None:
                outcomes.append(await self._send(booked.payout, actor))
        return SettlementReport(
            settled_orders=settled,
            payouts=outcomes,
            skipped=skipped,
            cancelled_orders=sweep.cancelled,
            auto_confirmed_orders=sweep.auto_confirmed,
        )

    async def _transaction(self, work: Callable[..., Awaitable[T]], *args: Any) -> T:
        """`work(*args)` in a transaction of its own: committed, or rolled back when it raises."""
        try:
            result = await work(*args)
        except BaseException:
            await self.session.rollback()
            raise
        await self.session.commit()
        return result

    async def _to_pay(self) -> list[tuple[uuid.UUID, str]]:
        """Providers and currencies with settled orders not yet claimed, or money in their payable."""
        candidates = await self.orders.payable_orders() | await self.ledger.repository.holding_payables()
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
        unpaid = await self.orders.unpaid_shares(provider_id, currency)
        payout_id = new_id()
        claimed = {
            order.id
            for order in await self.orders.claim_for_payout(provider_id, currency, payout_id, PAYOUT_MAX_ORDERS)
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
                await self.orders.mark_paid_out(payout_id, actor, unlink=True)
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
            await self.orders.mark_paid_out(payout_id, actor)
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
            await self.orders.mark_paid_out(payout.id, actor)
            current = await self._current(payout.id)
            await self._audit(actor, "payout.sent", current)
            return PayoutOutcome.of(current)
        return PayoutOutcome.of(await self._current(payout.id))

    async def _fail(self, payout: Payout, failure: str, actor: str) -> PayoutOutcome:
        """The gateway does not know the destination: nothing was sent. The booking is reversed (the debt
        repaid stays owed) and the claimed orders wait for the next payout."""
        if await self.payouts.finish(payout.id, PayoutStatus.FAILED, failure=failure[:500]):
            await self.orders.release_payout_claim(payout.id)
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
