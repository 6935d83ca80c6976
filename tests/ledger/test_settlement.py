"""Settlement: completed orders split into the provider's payable and the platform's fee, payouts through
the gateway (the provider's debt repaid first), refunds after settlement or payout, and runs that are safe
to repeat or to run at once (those on PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest

from marketplace.accounts.models import Organization
from marketplace.db import SessionMaker, unit_of_work
from marketplace.flows.settlement import SETTLEMENT_BATCH
from marketplace.kit.i18n import Message
from marketplace.kit.money import split
from marketplace.ledger.models import AccountCode, PayoutStatus, TransferKind
from marketplace.orders.models import OrderStatus
from marketplace.orders.schemas import RefundPath
from marketplace.orders.service import InvalidTransition
from marketplace.payments.gateway import GatewayError, UnknownAccount
from tests.fixtures.api import Api
from tests.ledger.trades import Shop, open_shop
from tests.orders.conftest import PRICE_MINOR
from tests.orders.factories import admin_principal, licences_remaining, listing

FEE_BPS = 500


@pytest.fixture
async def shop(api: Api) -> Shop:
    return await open_shop(api)


async def assert_books_ok(shop: Shop) -> None:
    check = await shop.check()
    assert check.ok, check
    assert check.escrow_checked
    assert await shop.audit_ok()


async def test_settlement_splits_each_order_into_payable_and_fee_rounded_half_up(shop: Shop) -> None:
    template = await shop.completed_order()
    # (amount, fee bps): exact fee, fractions below, at and above one half, a fee that takes it all, free
    amounts = [(1_234_567, 500), (10, 500), (30, 500), (50, 100), (1, 5_000), (3, 10_000), (0, 500)]
    orders = await shop.copies(template, amounts)
    report = await shop.settle()
    assert report.settled_orders == len(orders) + 1
    settlements = await shop.transfers(TransferKind.SETTLEMENT)
    fees = await shop.transfers(TransferKind.FEE)
    expected_fees = [61_728, 1, 2, 1, 1, 3, 0]  # 61_728.35, 0.5, 1.5, 0.5, 0.5, 3, 0
    for order_id, (amount, bps), fee in zip(orders, amounts, expected_fees, strict=True):
        assert split(amount, bps) == (amount - fee, fee)
        assert settlements.get(order_id, [0]) == [amount - fee]  # parts of 0 are not posted
        assert fees.get(order_id, [0]) == [fee]
    template_share, template_fee = split(PRICE_MINOR, FEE_BPS)
    shares = template_share + sum(amount - fee for (amount, _), fee in zip(amounts, expected_fees, strict=True))
    assert await shop.held(AccountCode.PLATFORM_REVENUE) == template_fee + sum(expected_fees)
    # then paid out at once by the local gateway, in one payout
    [payout] = report.payouts
    assert (payout.amount_minor, payout.status, payout.debt_repaid_minor) == (shares, PayoutStatus.SENT, 0)
    assert payout.reference == f"local_transfer_{payout.id.hex}"
    assert shop.gateway.transfers == [
        {
            "payout_id": payout.id,
            "destination": str(shop.provider.organization_id),
            "amount_minor": shares,
            "currency": "CNY",
        }
    ]
    assert await shop.held(AccountCode.PAYOUTS, shop.provider.organization_id) == shares
    assert await shop.held(AccountCode.PROVIDER_PAYABLE, shop.provider.organization_id) == 0
    statuses = await shop.statuses([template, *orders])
    assert set(statuses.values()) == {OrderStatus.PAID_OUT}
    free = await shop.status(orders[-1])
    assert free.payout_id == payout.id
    await assert_books_ok(shop)


async def test_a_second_run_changes_nothing(shop: Shop) -> None:
    template = await shop.completed_order()
    await shop.copies(template, [(PRICE_MINOR, FEE_BPS)] * 3)
    first = await shop.settle()
    assert first.settled_orders == 4
    assert len(first.payouts) == 1
    transfers = (await shop.check()).transfers
    accounts = await shop.account_count()
    second = await shop.settle()
    assert (second.settled_orders, second.payouts, second.skipped) == (0, [], [])
    assert (await shop.check()).transfers == transfers
    assert await shop.account_count() == accounts
    assert len(shop.gateway.transfers) == 1
    await assert_books_ok(shop)


async def test_settlement_runs_in_batches_oldest_first(shop: Shop) -> None:
    template = await shop.completed_order()
    orders = await shop.copies(template, [(100, FEE_BPS)] * (SETTLEMENT_BATCH + 5))
    report = await shop.settle()
    assert report.settled_orders == SETTLEMENT_BATCH + 6
    assert set((await shop.statuses(orders)).values()) == {OrderStatus.PAID_OUT}
    await assert_books_ok(shop)


async def test_a_disputed_order_is_not_settled_until_resolved(shop: Shop) -> None:
    async with unit_of_work(shop.sessions) as session:
        placed = await shop.orders(session).trading.place(shop.buyer.principal, shop.listing.trade(shop.buyer))
    order_id = placed.order.id
    async with unit_of_work(shop.sessions) as session:
        await shop.orders(session).payment.pay(shop.buyer.principal, order_id, None)
    async with unit_of_work(shop.sessions) as session:
        await shop.orders(session).transitions.dispute(
            shop.buyer.principal, order_id, "the rows are not what was listed"
        )
    report = await shop.settle()
    assert (report.settled_orders, report.payouts) == (0, [])
    assert (await shop.status(order_id)).status == OrderStatus.DISPUTED
    assert await shop.held(AccountCode.PROVIDER_PAYABLE, shop.provider.organization_id) == 0
    await assert_books_ok(shop)  # the escrow still holds the payment
    async with unit_of_work(shop.sessions) as session:
        await shop.orders(session).disputes.resolve_dispute(
            admin_principal(shop.admin), order_id, "release", "rows were fine"
        )
    report = await shop.settle()
    assert report.settled_orders == 1
    assert (await shop.status(order_id)).status == OrderStatus.PAID_OUT
    await assert_books_ok(shop)


async def test_a_refund_of_a_completed_order_comes_from_its_escrow(shop: Shop) -> None:
    order_id = await shop.completed_order()
    order, path = await shop.refund(order_id)
    assert (order.status, path) == (OrderStatus.REFUNDED, "escrow")
    assert order.refund_reference == f"local_refund_{order_id.hex}"
    assert shop.gateway.refunds == [order_id]
    assert await shop.held(AccountCode.REFUNDS) == PRICE_MINOR
    assert (await shop.settle()).settled_orders == 0
    assert (await shop.transfers(TransferKind.REFUND)) == {order_id: [PRICE_MINOR]}
    await assert_books_ok(shop)
    with pytest.raises(InvalidTransition):
        await shop.refund(order_id)
    assert shop.gateway.refunds == [order_id]


async def test_a_refund_of_a_settled_order_reverses_its_settlement(shop: Shop) -> None:
    provider = shop.provider.organization_id
    order_id = await shop.completed_order()
    shop.gateway.name = "stripe-like"  # a gateway with real accounts: this provider has none, so no payout
    report = await shop.settle()
    assert report.settled_orders == 1
    assert report.payouts == []
    [skipped] = report.skipped
    assert (skipped.organization_id, skipped.currency) == (provider, "CNY")
    assert "no payout account" in skipped.reason
    share, fee = split(PRICE_MINOR, FEE_BPS)
    assert await shop.held(AccountCode.PROVIDER_PAYABLE, provider) == share
    order, path = await shop.refund(order_id)
    assert (order.status, path) == (OrderStatus.REFUNDED, "reversal")
    assert await shop.held(AccountCode.PROVIDER_PAYABLE, provider) == 0
    assert await shop.held(AccountCode.PLATFORM_REVENUE) == 0
    assert await shop.held(AccountCode.REFUNDS) == PRICE_MINOR
    assert await shop.transfers(TransferKind.REVERSAL) == {order_id: [share, fee]}
    await assert_books_ok(shop)


async def test_a_refund_after_payout_becomes_the_providers_debt_repaid_from_the_next_payout(shop: Shop) -> None:
    provider = shop.provider.organization_id
    share = split(PRICE_MINOR, FEE_BPS)[0]
    first = await shop.completed_order()
    await shop.settle()
    assert (await shop.status(first)).status == OrderStatus.PAID_OUT
    order, path = await shop.refund(first)
    assert (order.status, path) == (OrderStatus.REFUNDED, "provider_debt")
    assert await shop.held(AccountCode.PROVIDER_DEBT, provider) == share
    assert await shop.held(AccountCode.PLATFORM_REVENUE) == 0
    assert await shop.held(AccountCode.REFUNDS) == PRICE_MINOR
    await assert_books_ok(shop)

    # the next order's share repays the debt first, and the rest is paid out
    template = await shop.completed_order()
    await shop.copies(template, [(PRICE_MINOR // 2, FEE_BPS)])
    small_share = split(PRICE_MINOR // 2, FEE_BPS)[0]
    report = await shop.settle()
    [payout] = report.payouts
    assert (payout.debt_repaid_minor, payout.amount_minor) == (share, small_share)
    assert await shop.held(AccountCode.PROVIDER_DEBT, provider) == 0
    assert await shop.held(AccountCode.PAYOUTS, provider) == share + small_share
    assert [t["amount_minor"] for t in shop.gateway.transfers] == [share, small_share]
    await assert_books_ok(shop)


async def test_a_debt_larger_than_the_next_shares_takes_all_of_them_and_nothing_is_sent(shop: Shop) -> None:
    provider = shop.provider.organization_id
    share = split(PRICE_MINOR, FEE_BPS)[0]
    first = await shop.completed_order()
    await shop.settle()
    await shop.refund(first)
    template = await shop.completed_order()
    await shop.refund(template)  # from completed: escrow
    [small] = await shop.copies(template, [(1_000, FEE_BPS)])
    report = await shop.settle()
    [payout] = report.payouts
    assert (payout.amount_minor, payout.debt_repaid_minor, payout.status) == (0, 950, PayoutStatus.SENT)
    assert payout.reference is None
    assert len(shop.gateway.transfers) == 1  # the first payout only
    assert (await shop.status(small)).status == OrderStatus.PAID_OUT
    assert await shop.held(AccountCode.PROVIDER_DEBT, provider) == share - 950
    await assert_books_ok(shop)


async def test_a_payout_the_gateway_refuses_is_reversed_and_paid_by_a_later_run(shop: Shop) -> None:
    provider = shop.provider.organization_id
    share = split(PRICE_MINOR, FEE_BPS)[0]
    order_id = await shop.completed_order()
    shop.gateway.transfer_error = UnknownAccount(Message("test.gateway", "no such account"))
    report = await shop.settle()
    [failed] = report.payouts
    assert (failed.status, failed.failure) == (PayoutStatus.FAILED, "no such account")
    order = await shop.status(order_id)
    assert (order.status, order.payout_id) == (OrderStatus.SETTLED, None)
    assert await shop.held(AccountCode.PROVIDER_PAYABLE, provider) == share
    assert await shop.held(AccountCode.PAYOUTS, provider) == 0
    await assert_books_ok(shop)

    shop.gateway.transfer_error = None
    [paid] = (await shop.settle()).payouts
    assert paid.id != failed.id
    assert (paid.status, paid.amount_minor) == (PayoutStatus.SENT, share)
    assert (await shop.status(order_id)).payout_id == paid.id
    await assert_books_ok(shop)


async def test_a_payout_the_gateway_cannot_answer_stays_pending_and_is_sent_again_under_its_id(shop: Shop) -> None:
    share = split(PRICE_MINOR, FEE_BPS)[0]
    order_id = await shop.completed_order()
    shop.gateway.transfer_error = GatewayError(Message("test.gateway", "stripe transfer failed: APIConnectionError"))
    [pending] = (await shop.settle()).payouts
    assert (pending.status, pending.failure) == (PayoutStatus.PENDING, "stripe transfer failed: APIConnectionError")
    order = await shop.status(order_id)
    assert (order.status, order.payout_id) == (OrderStatus.SETTLED, pending.id)
    await assert_books_ok(shop)

    shop.gateway.transfer_error = None
    report = await shop.settle()
    [sent] = report.payouts
    assert (sent.id, sent.status, sent.amount_minor, sent.failure) == (pending.id, PayoutStatus.SENT, share, None)
    assert [t["payout_id"] for t in shop.gateway.transfers] == [pending.id]
    assert (await shop.status(order_id)).status == OrderStatus.PAID_OUT
    assert len(await shop.payouts()) == 1
    await assert_books_ok(shop)


async def test_a_refund_while_the_payout_is_pending_makes_a_debt_and_a_failed_payout_gives_it_back(
    shop: Shop,
) -> None:
    provider = shop.provider.organization_id
    share = split(PRICE_MINOR, FEE_BPS)[0]
    refunded = await shop.completed_order()
    kept = await shop.completed_order()
    shop.gateway.transfer_error = GatewayError(Message("test.gateway", "timeout"))
    [pending] = (await shop.settle()).payouts
    assert pending.amount_minor == 2 * share
    assert (await shop.refund(refunded))[1] == "provider_debt"
    assert await shop.held(AccountCode.PROVIDER_DEBT, provider) == share
    await assert_books_ok(shop)
    # the gateway then refuses the payout: the booking is reversed; the next payout repays the debt first
    shop.gateway.transfer_error = UnknownAccount(Message("test.gateway", "no such account"))
    resent, booked = (await shop.settle()).payouts  # the pending payout, then one for the freed order
    assert (resent.id, resent.status, booked.status) == (pending.id, PayoutStatus.FAILED, PayoutStatus.FAILED)
    assert await shop.held(AccountCode.PROVIDER_PAYABLE, provider) == 2 * share
    await assert_books_ok(shop)
    shop.gateway.transfer_error = None
    [paid] = (await shop.settle()).payouts
    assert (paid.amount_minor, paid.debt_repaid_minor) == (share, share)
    assert (await shop.status(kept)).status == OrderStatus.PAID_OUT
    assert await shop.held(AccountCode.PROVIDER_DEBT, provider) == 0
    assert await shop.held(AccountCode.PROVIDER_PAYABLE, provider) == 0
    await assert_books_ok(shop)


async def test_only_completed_settled_and_paid_out_orders_are_refunded_this_way(shop: Shop) -> None:
    async with unit_of_work(shop.sessions) as session:
        placed = await shop.orders(session).trading.place(shop.buyer.principal, shop.listing.trade(shop.buyer))
    with pytest.raises(InvalidTransition):
        await shop.refund(placed.order.id)
    assert shop.gateway.refunds == []


async def test_a_free_order_settles_and_is_paid_out_without_money(shop: Shop) -> None:
    template = await shop.completed_order()
    async with unit_of_work(shop.sessions) as session:
        await shop.orders(session).refunds.refund_after_settlement(
            admin_principal(shop.admin), template, "only free ones"
        )
    [free] = await shop.copies(template, [(0, FEE_BPS)])
    report = await shop.settle()
    assert (report.settled_orders, report.payouts) == (1, [])
    order = await shop.status(free)
    assert (order.status, order.payout_id) == (OrderStatus.PAID_OUT, None)
    order, path = await shop.refund(free)
    assert (order.status, path, order.refund_reference) == (OrderStatus.REFUNDED, "provider_debt", None)
    await assert_books_ok(shop)


async def test_a_refund_after_payout_gives_the_licence_back(shop: Shop) -> None:
    shop.listing = await listing(shop.api, shop.provider, max_licences=2)
    order_id = await shop.completed_order()
    assert await licences_remaining(shop.sessions, shop.listing.product_id) == 1
    await shop.settle()
    await shop.refund(order_id)
    assert await licences_remaining(shop.sessions, shop.listing.product_id) == 2
    await assert_books_ok(shop)


async def test_with_a_real_gateway_payouts_go_to_the_connected_account_once_it_can_receive_them(shop: Shop) -> None:
    provider = shop.provider.organization_id
    shop.gateway.name = "stripe-like"
    await shop.completed_order()

    async def account(account_id: str | None, enabled: bool) -> None:
        async with unit_of_work(shop.sessions) as session:
            organization = await session.get(Organization, provider)
            assert organization is not None
            organization.payment_account_id, organization.payouts_enabled = account_id, enabled

    await account("acct_1Provider", False)
    report = await shop.settle()
    assert (report.settled_orders, report.payouts) == (1, [])
    assert "cannot receive payouts" in report.skipped[0].reason
    await account("acct_1Provider", True)
    [payout] = (await shop.settle()).payouts
    assert payout.status == PayoutStatus.SENT
    assert [t["destination"] for t in shop.gateway.transfers] == ["acct_1Provider"]
    await assert_books_ok(shop)


# PostgreSQL: concurrent runs and refunds, each in its own session


def conserved(shop: Shop, held: dict[AccountCode, int]) -> int:
    """What the credit-side accounts hold, less what providers owe: all the money that came in."""
    return (
        held[AccountCode.PROVIDER_PAYABLE]
        + held[AccountCode.PLATFORM_REVENUE]
        + held[AccountCode.REFUNDS]
        + held[AccountCode.PAYOUTS]
        - held[AccountCode.PROVIDER_DEBT]
    )


async def holdings(shop: Shop) -> dict[AccountCode, int]:
    provider = shop.provider.organization_id
    codes = {
        AccountCode.PROVIDER_PAYABLE: provider,
        AccountCode.PLATFORM_REVENUE: None,
        AccountCode.REFUNDS: None,
        AccountCode.PAYOUTS: provider,
        AccountCode.PROVIDER_DEBT: provider,
    }
    return {code: await shop.held(code, owner) for code, owner in codes.items()}


@pytest.mark.postgres
async def test_two_runs_at_once_settle_each_order_once_and_pay_each_share_once(
    shop: Shop, sessions: SessionMaker
) -> None:
    template = await shop.completed_order()
    orders = [template, *await shop.copies(template, [(1_000 + n, FEE_BPS) for n in range(299)])]
    reports = await asyncio.gather(shop.settle(sessions), shop.settle(sessions), shop.settle(sessions))
    assert sum(r.settled_orders for r in reports) == len(orders)
    settlements = await shop.transfers(TransferKind.SETTLEMENT)
    assert set(settlements) == set(orders)
    assert all(len(amounts) == 1 for amounts in settlements.values())
    payouts = await shop.payouts()
    assert {p.status for p in payouts} == {PayoutStatus.SENT}
    shares = split(PRICE_MINOR, FEE_BPS)[0] + sum(split(1_000 + n, FEE_BPS)[0] for n in range(299))
    assert sum(p.amount_minor for p in payouts) == shares
    # the gateway may be asked twice for one payout (it is keyed by the payout): never for two amounts
    sent = {(t["payout_id"], t["amount_minor"]) for t in shop.gateway.transfers}
    assert sent == {(p.id, p.amount_minor) for p in payouts}
    statuses = await shop.statuses(orders)
    assert set(statuses.values()) == {OrderStatus.PAID_OUT}
    await assert_books_ok(shop)


@pytest.mark.postgres
async def test_release_racing_refund_on_500_escrows(shop: Shop, sessions: SessionMaker) -> None:
    """500 completed orders; settlement runs (twice, at once) while all 500 are refunded concurrently, each
    refund in its own transaction. No order settles twice, each ends refunded by exactly one path, and
    the money is conserved."""
    template = await shop.completed_order()
    orders = [template, *await shop.copies(template, [(10_000 + n, FEE_BPS) for n in range(499)])]
    payments = PRICE_MINOR + sum(10_000 + n for n in range(499))
    gate = asyncio.Semaphore(16)

    async def refund(order_id: uuid.UUID) -> RefundPath:
        async with gate:
            await asyncio.sleep(0)
            return (await shop.refund(order_id, sessions))[1]

    async def settle_later(delay: float) -> int:
        await asyncio.sleep(delay)
        return (await shop.settle(sessions)).settled_orders

    refunds_done = asyncio.gather(*(refund(order_id) for order_id in orders[::-1]))
    runs = await asyncio.gather(settle_later(0), settle_later(0.05))
    settled_by_runs = sum(runs)
    paths = Counter(await refunds_done)
    assert sum(paths.values()) == 500
    # every order settled at most once; those settled were refunded from payable or as debt
    settlements = await shop.transfers(TransferKind.SETTLEMENT)
    assert all(len(amounts) == 1 for amounts in settlements.values())
    assert len(settlements) == settled_by_runs == paths["reversal"] + paths["provider_debt"]
    assert paths["escrow"] == 500 - settled_by_runs
    assert set((await shop.statuses(orders)).values()) == {OrderStatus.REFUNDED}
    refunds = await shop.transfers(TransferKind.REFUND)
    debts = await shop.transfers(TransferKind.DEBT)
    reversals = await shop.transfers(TransferKind.REVERSAL)
    for order_id in orders:
        # exactly one path: from escrow, or the share reversed from payable or made a debt (fee reversed)
        assert (order_id in refunds) != (order_id in settlements)
        if order_id in settlements:
            assert len(reversals[order_id]) + len(debts.get(order_id, [])) == 2
    held = await holdings(shop)
    assert held[AccountCode.REFUNDS] == payments
    assert held[AccountCode.PLATFORM_REVENUE] == 0
    assert conserved(shop, held) == payments
    assert held[AccountCode.PAYOUTS] - held[AccountCode.PROVIDER_DEBT] + held[AccountCode.PROVIDER_PAYABLE] == 0
    await assert_books_ok(shop)
    # the race took every path (how often each depends on the timing)
    assert paths["escrow"], paths
    assert paths["reversal"] + paths["provider_debt"], paths
