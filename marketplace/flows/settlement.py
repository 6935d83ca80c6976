"""Settlement: the batch that settles completed orders and pays providers out (`marketplace settle`,
`POST /api/v1/admin/settlements`).

A run is a sequence of short transactions (the service commits as it goes):

1. the sweep: unpaid orders time out, unconfirmed deliveries complete (`Settlement.sweep`);
2. completed orders settle, oldest first, in batches: each moves to settled, its escrow split into the
   provider's payable (price - fee) and the platform's revenue (the fee; `kit.money.split` rounds it
   half up) (`Settlement._settle`); then the usage statements and subscription renewals collected since,
   the same way (`RecurringBilling.settle`);
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

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.audit.service import SYSTEM_ACTOR
from marketplace.catalog.service import CatalogService
from marketplace.config import Settings
from marketplace.flows.billing import RecurringBilling
from marketplace.flows.escrow import escrow_of
from marketplace.flows.payouts import PayoutOutcome, Payouts, SkippedPayout, in_transaction
from marketplace.kit import clock
from marketplace.kit.money import split, transfer_id
from marketplace.kit.progress import Progress, unreported
from marketplace.ledger.models import AccountCode, LedgerAccount, TransferKind
from marketplace.ledger.service import LedgerService
from marketplace.orders.models import Order, OrderStatus
from marketplace.orders.service import SweepResult
from marketplace.orders.transitions import OrderTransitions

# Completed orders settled per transaction; a run goes on until none is left. Small, because every order
# updates the same few rows (its provider's payable), and PostgreSQL
# updates a row that one transaction has already updated many times ever more slowly.
SETTLEMENT_BATCH = 50
# Pending payouts of earlier runs sent again per run at most.
RESEND_LIMIT = 1_000


@dataclass(frozen=True)
class SettlementReport:
    settled_orders: int
    payouts: list[PayoutOutcome] = field(default_factory=list)
    skipped: list[SkippedPayout] = field(default_factory=list)
    cancelled_orders: int = 0
    auto_confirmed_orders: int = 0
    settled_charges: int = 0  # usage statements and renewals collected and settled


class Settlement:
    def __init__(
        self,
        session: AsyncSession,
        settings: Settings,
        transitions: OrderTransitions,
        catalog: CatalogService,
        ledger: LedgerService,
        payouts: Payouts,
        billing: RecurringBilling,
    ) -> None:
        self.session = session
        self.settings = settings
        self.transitions = transitions
        self.catalog = catalog
        self.ledger = ledger
        self.payouts = payouts
        self.billing = billing

    async def run(self, actor: str, progress: Progress = unreported) -> SettlementReport:
        """Sweep, settle every completed order, send the payouts still pending, book and send new ones.
        Commits as it goes: whatever a failure interrupts, the next run takes up."""
        await self.session.commit()  # whatever the caller read so far; each step below is a transaction
        started = clock.now()
        sweep = await in_transaction(self.session, self.sweep)
        settled = 0
        progress("orders settled", settled)
        while True:
            batch = await in_transaction(self.session, self._settle, SETTLEMENT_BATCH, actor)
            settled += len(batch)
            progress("orders settled", settled)
            if len(batch) < SETTLEMENT_BATCH:
                break
        charges = await self.billing.settle(actor)
        progress("payouts", 0)
        outcomes, skipped = await self.payouts.run(started, RESEND_LIMIT, actor)
        progress("payouts", len(outcomes), len(outcomes))
        return SettlementReport(
            settled_orders=settled,
            payouts=outcomes,
            skipped=skipped,
            cancelled_orders=sweep.cancelled,
            auto_confirmed_orders=sweep.auto_confirmed,
            settled_charges=charges,
        )

    async def sweep(self) -> SweepResult:
        """Cancel accepted orders left unpaid past the payment window (their licences released) and
        complete delivered orders left unconfirmed past the confirmation window. The moves and the
        licences come first, the audit entries last (the lock order of `OrderTransitions.move`)."""
        settings, moves = self.settings, self.transitions
        cancelled = await moves.due(OrderStatus.ACCEPTED, OrderStatus.CANCELLED, settings.order_payment_window_seconds)
        for order in sorted(cancelled, key=lambda o: (o.product_id, o.id)):
            await self.catalog.release_licences(order.product_id, order.licences_reserved)
        completed = await moves.due(OrderStatus.DELIVERED, OrderStatus.COMPLETED, settings.order_confirm_window_seconds)
        await moves.record_moves(
            cancelled, OrderStatus.ACCEPTED, OrderStatus.CANCELLED, SYSTEM_ACTOR, "payment window expired", {}
        )
        await moves.record_moves(
            completed, OrderStatus.DELIVERED, OrderStatus.COMPLETED, SYSTEM_ACTOR, "auto-confirmed", {}
        )
        return SweepResult(cancelled=len(cancelled), auto_confirmed=len(completed))

    async def _settle(self, limit: int, actor: str) -> Sequence[Order]:
        """Settle up to `limit` completed orders, oldest first, in the caller's transaction: each moves to
        settled and its escrow is split, escrow -> provider payable (price - fee) and escrow -> platform
        revenue (the fee, `split` rounds it half up); parts of 0 are not posted, so a free order just moves.
        Orders another transaction holds (a refund, a concurrent run) are left for the next run. A disputed
        order is never completed, so it never settles while disputed."""
        orders = await self.transitions.settle_batch(limit)
        paid = [o for o in orders if o.amount_minor > 0]
        # Open (or create) the shared accounts in one order, so concurrent runs creating them cannot deadlock.
        shared: dict[tuple[AccountCode, str, uuid.UUID | None], LedgerAccount] = {}
        for code, currency, owner in sorted(
            {(AccountCode.PROVIDER_PAYABLE, o.currency, o.provider_organization_id) for o in paid}
            | {(AccountCode.PLATFORM_REVENUE, o.currency, None) for o in paid},
            key=str,
        ):
            shared[code, currency, owner] = await self.ledger.account(code, currency, organization_id=owner)
        parts = []
        for order in paid:
            provider_minor, fee_minor = split(order.amount_minor, order.fee_bps)
            escrow = await escrow_of(self.ledger, order)
            payable = shared[AccountCode.PROVIDER_PAYABLE, order.currency, order.provider_organization_id]
            revenue = shared[AccountCode.PLATFORM_REVENUE, order.currency, None]
            parts.append((order, escrow, payable, revenue, provider_minor, fee_minor))
        # Payables in id order, then revenue: the lock order above.
        for order, escrow, payable, _, provider_minor, _ in sorted(parts, key=lambda p: (p[2].id, p[0].id)):
            if provider_minor:
                await self.ledger.post(
                    transfer_id(order.id, "settlement"),
                    escrow,
                    payable,
                    provider_minor,
                    order.currency,
                    TransferKind.SETTLEMENT,
                    order_id=order.id,
                )
        for order, escrow, _, revenue, _, fee_minor in sorted(parts, key=lambda p: (p[3].id, p[0].id)):
            if fee_minor:
                await self.ledger.post(
                    transfer_id(order.id, "fee"),
                    escrow,
                    revenue,
                    fee_minor,
                    order.currency,
                    TransferKind.FEE,
                    order_id=order.id,
                )
        split_of = {p[0].id: {"provider_minor": p[4], "fee_minor": p[5]} for p in parts}
        await self.transitions.record_moves(
            orders, OrderStatus.COMPLETED, OrderStatus.SETTLED, actor, "settled", split_of
        )
        return orders
