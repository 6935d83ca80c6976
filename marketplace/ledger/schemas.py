"""Response shapes of the money endpoints."""

from __future__ import annotations

import uuid

from marketplace.kit.schemas import ResponseBody
from marketplace.ledger.models import AccountCode


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


class LedgerCheckRead(ResponseBody):
    ok: bool
    transfers: int
    imbalance_minor: int
    currencies: list[CurrencyTotalsRead]
    negative_accounts: list[AccountTotalsRead]
    mismatched_accounts: list[AccountTotalsRead]
    escrow_checked: bool
    escrow_mismatches: list[EscrowMismatchRead]
