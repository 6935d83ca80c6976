"""Recurring billing: a metered licence's usage statement at the end of each month, a subscription's renewal at the
end of each period, each collected through the gateway off-session, retried when declined, and settled to the
provider less the platform fee by the settlement batch; an unpaid charge suspends its licence after a grace, and
an unpaid renewal expires it after the suspension.

The money (marketplace/ledger, DESIGN.md section 5):

- a billed metered call posts buyer receivable -> the order's accrued usage (flows/data_calls.py);
- a statement collected posts platform clearing -> buyer receivable: the money arrived, the buyer owes it no more;
- a renewal collected posts platform clearing -> the renewal's escrow, as an order's payment does;
- settlement posts accrued usage (a statement) or the renewal's escrow -> provider payable (amount - fee) and
  -> platform revenue (the fee, `kit.money.split`), and the payout batch pays the payable out.

Every step is safe to run twice, or at once on two workers: a charge is one row per (licence, period) under a
unique constraint; an attempt's gateway call carries an idempotency key of the charge and its attempt number, is
made outside any transaction, and its outcome is recorded by an update guarded on the status and attempt it was
read at (a second run finds it moved and does nothing); transfers have ids derived from the charge and the step;
settlement claims rows with FOR UPDATE SKIP LOCKED and marks them settled by a guarded update."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.billing.models import COLLECTABLE, Charge, SubscriptionRenewal, UsageStatement
from marketplace.billing.service import BillingService
from marketplace.config import Settings
from marketplace.delivery.licences import LicenceService
from marketplace.delivery.models import LicenceStatus, usage_period
from marketplace.errors import Conflict
from marketplace.flows.payouts import in_transaction
from marketplace.kit import clock
from marketplace.kit.i18n import Message
from marketplace.kit.money import split, transfer_id
from marketplace.ledger.models import AccountCode, LedgerAccount, TransferKind
from marketplace.ledger.service import LedgerService
from marketplace.payments.gateway import GatewayError, PaymentGateway, PaymentState, PaymentStatus
from marketplace.payments.models import SavedPaymentMethod
from marketplace.payments.service import PaymentsService

log = logging.getLogger("marketplace.billing")

C = TypeVar("C", bound=Charge)

# A month is stated this long after it ends: a call answered at its last instant is metered after its query, in
# a transaction of its own, which has committed by then.
STATEMENT_DELAY = timedelta(minutes=10)
# Rows made, collected or settled per transaction (collected: per run; the next run takes the rest).
BATCH = 100
COLLECT_LIMIT = 500
# Why billing suspends a licence; a payment reinstates only a licence suspended for one of these.
USAGE_UNPAID = "a usage statement is unpaid"
RENEWAL_UNPAID = "the subscription's renewal is unpaid"
RENEWAL_LAPSED = "the subscription's renewal was never paid"
BILLING_SUSPENSIONS = frozenset({USAGE_UNPAID, RENEWAL_UNPAID})
NO_PAYMENT_METHOD = "the buyer has saved no payment method"
DECLINED = "the payment was declined"


@dataclass(frozen=True)
class Collection:
    """What a collection run did."""

    paid: int = 0
    failed: int = 0
    waiting: int = 0  # the gateway has not decided, or did not answer: tried again next run
    suspended: int = 0
    expired: int = 0


class RecurringBilling:
    """Makes, collects and settles usage statements and renewals; commits as it goes (each step is a transaction)."""

    def __init__(
        self,
        session: AsyncSession,
        settings: Settings,
        gateway: PaymentGateway,
        billing: BillingService,
        licences: LicenceService,
        ledger: LedgerService,
        payments: PaymentsService,
    ) -> None:
        self.session = session
        self.settings = settings
        self.gateway = gateway
        self.billing = billing
        self.licences = licences
        self.ledger = ledger
        self.payments = payments

    # usage statements

    async def issue_statements(self, actor: str, licence_id: uuid.UUID | None = None) -> list[UsageStatement]:
        """A statement for every metered licence's month that has ended (`licence_id`: that licence's only) and
        has none yet; a month without a metered call has no statement."""
        await self.session.commit()
        before = usage_period(clock.now() - STATEMENT_DELAY)
        issued: list[UsageStatement] = []
        while True:
            seen, batch = await in_transaction(self.session, self._issue, before, licence_id, actor)
            issued.extend(batch)
            if seen < BATCH:
                return issued

    async def _issue(self, before: str, licence_id: uuid.UUID | None, actor: str) -> tuple[int, list[UsageStatement]]:
        closed = await self.billing.closed_usage(before, licence_id, BATCH)
        made = [statement for usage in closed if (statement := await self.billing.issue_statement(usage)) is not None]
        for statement in made:
            await self.billing.record_issued(statement, actor)
        return len(closed), made

    async def collect_usage(self, actor: str) -> Collection:
        """Collect the statements due, then suspend the licences whose statement is unpaid past the grace."""
        collected = await self._collect(UsageStatement, actor)
        suspended = await in_transaction(self.session, self._suspend_overdue, UsageStatement, USAGE_UNPAID, actor)
        return Collection(collected.paid, collected.failed, collected.waiting, suspended)

    # subscription renewals

    async def renew_subscriptions(self, actor: str) -> Collection:
        """Open a renewal for every subscription whose period has ended, collect the renewals due (those of a
        licence revoked or expired meanwhile lapse uncharged), suspend the licences unpaid past the grace and
        expire those unpaid past the suspension too."""
        await self.session.commit()
        while await in_transaction(self.session, self._open_renewals, actor) == BATCH:
            pass
        collected = await self._collect(SubscriptionRenewal, actor)
        suspended, expired = await in_transaction(self.session, self._enforce_renewals, actor)
        return Collection(collected.paid, collected.failed, collected.waiting, suspended, expired)

    async def _open_renewals(self, actor: str) -> int:
        """Open the renewals due (up to a batch), and lapse those of licences revoked or expired meanwhile; the rows
        first, the audit entries last."""
        due = await self.billing.due_renewals(clock.now(), BATCH)
        made = [renewal for item in due if (renewal := await self.billing.open_renewal(item)) is not None]
        lapsed = [
            renewal
            for status in (LicenceStatus.REVOKED, LicenceStatus.EXPIRED)
            for renewal in await self.billing.overdue(SubscriptionRenewal, clock.now(), status)
            if await self.billing.lapse(renewal)
        ]
        for renewal in made:
            await self.billing.record_opened(renewal, actor)
        for renewal in lapsed:
            await self.billing.record_lapsed(renewal, actor)
        return len(due)

    async def _enforce_renewals(self, actor: str) -> tuple[int, int]:
        """Licences unpaid past the grace suspended, past the suspension expired: how many of each."""
        suspended = await self._suspend_overdue(SubscriptionRenewal, RENEWAL_UNPAID, actor)
        return suspended, await self._expire_lapsed(actor)

    async def _expire_lapsed(self, actor: str) -> int:
        """Renewals unpaid past the grace and the suspension: the renewal lapses and its licence expires."""
        settings = self.settings
        since = clock.now() - timedelta(
            seconds=settings.billing_grace_seconds + settings.subscription_suspension_seconds
        )
        overdue = await self.billing.overdue(SubscriptionRenewal, since, LicenceStatus.SUSPENDED)
        lapsed = [renewal for renewal in overdue if await self.billing.lapse(renewal)]
        licences = [await self.licences.get(licence_id) for licence_id in sorted({r.licence_id for r in lapsed})]
        expired = await self.licences.change_each(licences, LicenceStatus.EXPIRED, RENEWAL_LAPSED, actor)
        for renewal in lapsed:
            await self.billing.record_lapsed(renewal, actor)
        return expired

    # collection

    async def _collect(self, model: type[C], actor: str) -> Collection:
        """One attempt for each charge due now: the gateway asked outside any transaction, the outcome recorded in
        a transaction of its own."""
        await self.session.commit()
        due, saved = await in_transaction(self.session, self._due, model)
        outcomes = [await self._attempt(charge, saved.get(charge.buyer_organization_id), actor) for charge in due]
        return Collection(
            paid=outcomes.count(PaymentStatus.SUCCEEDED),
            failed=outcomes.count(PaymentStatus.FAILED),
            waiting=outcomes.count(PaymentStatus.PROCESSING),
        )

    async def _due(self, model: type[C]) -> tuple[Sequence[C], dict[uuid.UUID, SavedPaymentMethod]]:
        """The charges due now, and their buyers' saved payment methods."""
        due = await self.billing.due(model, clock.now(), COLLECT_LIMIT)
        saved = {}
        for buyer_id in {charge.buyer_organization_id for charge in due}:
            if (method := await self.payments.saved_method(buyer_id)) is not None:
                saved[buyer_id] = method
        return due, saved

    async def _attempt(self, charge: Charge, saved: SavedPaymentMethod | None, actor: str) -> PaymentStatus:
        try:
            if charge.payment_reference:  # an earlier attempt the gateway had not decided: look at it again
                state = await self.gateway.fetch_payment(charge.payment_reference)
            else:
                state = await self.gateway.charge_saved(
                    charge_id=charge.id,
                    attempt=charge.attempts,
                    amount_minor=charge.amount_minor,
                    currency=charge.currency,
                    customer=saved.customer if saved else None,
                    payment_method=saved.payment_method if saved else None,
                )
        except GatewayError as exc:
            log.warning("charge %s not collected, tried again next run: %s", charge.id, exc)
            return PaymentStatus.PROCESSING
        failure = DECLINED if state.reference else NO_PAYMENT_METHOD
        return await in_transaction(self.session, self._record, charge, state, failure, actor)

    async def _record(self, read: Charge, state: PaymentState, failure: str, actor: str) -> PaymentStatus:
        """What the gateway said about one attempt, applied once: a charge another run moved meanwhile (its status
        or attempt no longer as read) is left as it is."""
        charge = await self.billing.lock(type(read), read.id)
        if charge is None or charge.status not in COLLECTABLE or charge.attempts != read.attempts:
            return PaymentStatus.PROCESSING
        if state.status == PaymentStatus.SUCCEEDED:
            if (state.amount_minor, state.currency.upper()) != (charge.amount_minor, charge.currency):
                raise Conflict(
                    Message("billing.amount-differs", "the payment's amount differs from the charge's"),
                    charge_id=str(charge.id),
                )
            await self._paid(charge, state.reference, actor)
            return PaymentStatus.SUCCEEDED
        if state.status in (PaymentStatus.FAILED, PaymentStatus.CANCELED):
            await self.billing.failed(charge, self.gateway.name, failure, self._retry_at(charge.attempts + 1), actor)
            return PaymentStatus.FAILED
        await self.billing.waiting(charge, self.gateway.name, state.reference)
        return PaymentStatus.PROCESSING

    async def _paid(self, charge: Charge, reference: str, actor: str) -> None:
        """The money arrived: the ledger first, then the licence (renewed, reinstated), the records last."""
        if not await self.billing.paid(charge, self.gateway.name, reference):
            return  # cannot happen under the row lock `_record` holds; nothing is posted if it did
        clearing = await self.ledger.account(AccountCode.PLATFORM_CLEARING, charge.currency)
        if isinstance(charge, UsageStatement):
            receivable = await self.ledger.account(
                AccountCode.BUYER_RECEIVABLE, charge.currency, organization_id=charge.buyer_organization_id
            )
            await self.ledger.post(
                transfer_id(charge.id, "collection"),
                clearing,
                receivable,
                charge.amount_minor,
                charge.currency,
                TransferKind.PAYMENT,
                order_id=charge.order_id,
            )
        else:
            await self.ledger.post(
                transfer_id(charge.id, "payment"),
                clearing,
                await self._held_by(charge),
                charge.amount_minor,
                charge.currency,
                TransferKind.PAYMENT,
                order_id=charge.id,
            )
        licence = await self.licences.get(charge.licence_id)
        if isinstance(charge, SubscriptionRenewal):
            await self.licences.extend(licence, charge.period_end, actor)
        suspended_for_this = licence.status == LicenceStatus.SUSPENDED and licence.status_reason in BILLING_SUSPENSIONS
        if suspended_for_this and not await self.billing.unpaid_of(licence.id):
            await self.licences.change(licence, LicenceStatus.ACTIVE, "the unpaid charges are paid", actor)
        await self.billing.record_paid(charge, actor)

    def _retry_at(self, failures: int) -> datetime:
        """When to try again after the `failures`-th declined attempt: the schedule's step for it, its last step
        once the schedule has run out (a buyer who fixes its card is charged at the next)."""
        schedule = self.settings.billing_retry_seconds
        return clock.now() + timedelta(seconds=schedule[min(failures, len(schedule)) - 1])

    async def _suspend_overdue(self, model: type[C], reason: str, actor: str) -> int:
        since = clock.now() - timedelta(seconds=self.settings.billing_grace_seconds)
        overdue = await self.billing.overdue(model, since, LicenceStatus.ACTIVE)
        licences = [await self.licences.get(licence_id) for licence_id in sorted({c.licence_id for c in overdue})]
        return await self.licences.change_each(licences, LicenceStatus.SUSPENDED, reason, actor)

    # settlement (a step of the settlement batch, flows/settlement.py)

    async def settle(self, actor: str) -> int:
        """Settle every collected charge: its money to the provider's payable less the fee, which goes to the
        platform's revenue; how many."""
        settled = 0
        while True:
            statements, renewals = await in_transaction(self.session, self._settle_both, actor)
            settled += statements + renewals
            if max(statements, renewals) < BATCH:
                return settled

    async def _settle_both(self, actor: str) -> tuple[int, int]:
        return await self._settle(UsageStatement, actor), await self._settle(SubscriptionRenewal, actor)

    async def _settle(self, model: type[Charge], actor: str) -> int:
        charges = await self.billing.to_settle(model, BATCH)
        # The shared accounts in one order, so concurrent runs cannot deadlock (as flows/settlement.py does).
        shared: dict[tuple[AccountCode, str, uuid.UUID | None], LedgerAccount] = {}
        for code, currency, owner in sorted(
            {(AccountCode.PROVIDER_PAYABLE, c.currency, c.provider_organization_id) for c in charges}
            | {(AccountCode.PLATFORM_REVENUE, c.currency, None) for c in charges},
            key=str,
        ):
            shared[code, currency, owner] = await self.ledger.account(code, currency, organization_id=owner)
        parts = []
        for charge in charges:
            provider_minor, fee_minor = split(charge.amount_minor, charge.fee_bps)
            payable = shared[AccountCode.PROVIDER_PAYABLE, charge.currency, charge.provider_organization_id]
            revenue = shared[AccountCode.PLATFORM_REVENUE, charge.currency, None]
            # nothing to move for a charge of nothing (a free subscription): it is just marked settled
            source = await self._held_by(charge) if charge.amount_minor else None
            parts.append((charge, source, payable, revenue, provider_minor, fee_minor))
        for charge, source, payable, _, provider_minor, _ in sorted(parts, key=lambda p: (p[2].id, p[0].id)):
            if source is not None and provider_minor:
                await self._post_settlement(
                    charge, source, payable, provider_minor, "settlement", TransferKind.SETTLEMENT
                )
        for charge, source, _, revenue, _, fee_minor in sorted(parts, key=lambda p: (p[3].id, p[0].id)):
            if source is not None and fee_minor:
                await self._post_settlement(charge, source, revenue, fee_minor, "fee", TransferKind.FEE)
        for charge, _, _, _, provider_minor, fee_minor in parts:
            await self.billing.settled(charge, {"provider_minor": provider_minor, "fee_minor": fee_minor}, actor)
        return len(charges)

    async def _post_settlement(
        self, charge: Charge, source: LedgerAccount, to: LedgerAccount, amount: int, step: str, kind: TransferKind
    ) -> None:
        subject = charge.order_id if isinstance(charge, UsageStatement) else charge.id
        await self.ledger.post(
            transfer_id(charge.id, step), source, to, amount, charge.currency, kind, order_id=subject
        )

    async def _held_by(self, charge: Charge) -> LedgerAccount:
        """Where a collected charge's money waits for settlement: a statement's in its order's accrued usage (the
        calls billed it), a renewal's in an escrow of its own."""
        if isinstance(charge, UsageStatement):
            return await self.ledger.account(
                AccountCode.USAGE_ACCRUED,
                charge.currency,
                organization_id=charge.provider_organization_id,
                order_id=charge.order_id,
            )
        return await self.ledger.account(
            AccountCode.ESCROW, charge.currency, organization_id=charge.provider_organization_id, order_id=charge.id
        )
