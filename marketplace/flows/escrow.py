"""The money of one order: its escrow account, filled by the payment and emptied by a refund or settlement;
and a second payment of the same order, which goes straight back."""

from __future__ import annotations

import uuid

from marketplace.kit.money import transfer_id
from marketplace.ledger.models import AccountCode, LedgerAccount, TransferKind
from marketplace.ledger.service import LedgerService, PostResult
from marketplace.orders.models import Order


async def escrow_of(ledger: LedgerService, order: Order) -> LedgerAccount:
    return await ledger.account(
        AccountCode.ESCROW, order.currency, organization_id=order.provider_organization_id, order_id=order.id
    )


async def hold_payment(ledger: LedgerService, order: Order) -> None:
    """The buyer's money arrives: platform clearing -> the order's escrow (nothing for a free order)."""
    if order.amount_minor == 0:
        return
    clearing = await ledger.account(AccountCode.PLATFORM_CLEARING, order.currency)
    await ledger.post(
        transfer_id(order.id, "payment"),
        clearing,
        await escrow_of(ledger, order),
        order.amount_minor,
        order.currency,
        TransferKind.PAYMENT,
        order_id=order.id,
    )


async def refund_escrow(ledger: LedgerService, order: Order) -> None:
    """The buyer's money goes back: the order's escrow -> refunds (nothing for a free order)."""
    if order.amount_minor == 0:
        return
    escrow = await escrow_of(ledger, order)
    refunds = await ledger.account(AccountCode.REFUNDS, order.currency)
    await ledger.post(
        transfer_id(order.id, "refund"),
        escrow,
        refunds,
        order.amount_minor,
        order.currency,
        TransferKind.REFUND,
        order_id=order.id,
    )


async def refund_second_payment(
    ledger: LedgerService, order_id: uuid.UUID, reference: str, amount_minor: int, currency: str
) -> PostResult:
    """A payment the order did not need arrives and leaves at once: platform clearing -> refunds, under a
    transfer id of its own payment (a replay posts nothing: EXISTS)."""
    clearing = await ledger.account(AccountCode.PLATFORM_CLEARING, currency)
    refunds = await ledger.account(AccountCode.REFUNDS, currency)
    return await ledger.post(
        transfer_id(order_id, f"second-payment:{reference}"),
        clearing,
        refunds,
        amount_minor,
        currency,
        TransferKind.REFUND,
        order_id=order_id,
    )
