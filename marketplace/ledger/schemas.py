"""Response shapes of the money endpoints."""

from __future__ import annotations

import uuid

from pydantic import Field

from marketplace.kit.schemas import ResponseBody
from marketplace.ledger.models import AccountCode, PayoutStatus


class BalanceRead(ResponseBody):
    """An organisation's money in one currency, in minor units."""

    currency: str
    available_minor: int
    pending_minor: int
    paid_out_minor: int
    debt_minor: int


class CurrencyTotalsRead(ResponseBody):
    currency: str
    transfers: int
    debits_posted: int
    credits_posted: int


class AccountTotalsRead(ResponseBody):
    """An account's running totals beside the sums of its transfers."""

    id: uuid.UUID
    key: str
    code: AccountCode
    currency: str
    no_overdraft: bool
    debits_posted: int
    credits_posted: int
    debits_from_transfers: int
    credits_from_transfers: int


class EscrowMismatchRead(ResponseBody):
    order_id: uuid.UUID
    currency: str
    held_minor: int
    expected_minor: int


class ReceivableMismatchRead(ResponseBody):
    organization_id: uuid.UUID
    currency: str
    owed_minor: int
    expected_minor: int


class LedgerCheckRead(ResponseBody):
    ok: bool
    transfers: int
    imbalance_minor: int
    currencies: list[CurrencyTotalsRead]
    negative_accounts: list[AccountTotalsRead]
    mismatched_accounts: list[AccountTotalsRead]
    escrow_checked: bool
    escrow_mismatches: list[EscrowMismatchRead] = Field(
        description="orders (and paid subscription renewals, by the renewal's id) whose escrow holds another amount"
    )
    usage_checked: bool = Field(description="whether the receivables and accrued usage were checked too")
    receivable_mismatches: list[ReceivableMismatchRead] = Field(
        description="buyers owed another amount than the metered calls billed to them and not yet collected"
    )
    accrued_mismatches: list[EscrowMismatchRead] = Field(
        description="orders whose accrued usage holds another amount than their calls billed and not yet settled"
    )


class PayoutRead(ResponseBody):
    """A payout as a settlement run left it."""

    id: uuid.UUID
    organization_id: uuid.UUID
    currency: str
    amount_minor: int = Field(description="sent to the provider: its orders' shares less the debt repaid")
    debt_repaid_minor: int = Field(description="taken first to repay what the provider owed for refunds")
    status: PayoutStatus = Field(description="pending: booked, the gateway has not confirmed it (sent again next run)")
    reference: str | None = Field(description="the gateway's id of the transfer, once sent")
    failure: str | None = Field(description="why the gateway refused or failed the last attempt")


class SkippedPayoutRead(ResponseBody):
    organization_id: uuid.UUID
    currency: str
    reason: str


class SettlementRead(ResponseBody):
    """What a settlement run did."""

    settled_orders: int = Field(description="completed orders settled: escrow split into payable and fee")
    payouts: list[PayoutRead]
    skipped: list[SkippedPayoutRead] = Field(description="providers not paid out: no usable gateway account")
    cancelled_orders: int = Field(description="accepted orders cancelled by the sweep: payment window expired")
    auto_confirmed_orders: int = Field(description="delivered orders completed by the sweep: not confirmed in time")
    settled_charges: int = Field(
        description="usage statements and subscription renewals collected and settled: split into payable and fee"
    )
