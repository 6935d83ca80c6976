"""A metered licence's month, from its calls to the provider's payout: 103 calls, 3 included and 100 billed at 100
minor units; the month's statement (100 billable calls, 10,000); collected through the gateway; settled to the
provider less the 5 % fee; paid out. The books are right at every step, to the minor unit."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from marketplace.billing.models import ChargeStatus, UsageStatement
from marketplace.delivery.models import next_period_start, usage_period
from marketplace.jobs import collect_usage, settle, usage_statements
from marketplace.kit import clock
from tests.billing.conftest import INCLUDED_CALLS, UNIT_PRICE_MINOR, Billing

BILLED_CALLS = 100
AMOUNT_MINOR = BILLED_CALLS * UNIT_PRICE_MINOR  # 10,000
FEE_MINOR = 500  # 5 % of 10,000 (PLATFORM_FEE_BPS 500)
ORDER_PRICE_MINOR, ORDER_FEE_MINOR = 1_000, 50  # the metered plan's price, paid with the order


async def test_a_month_of_metered_calls_is_stated_collected_settled_and_paid_out(billing: Billing) -> None:
    market = billing.market
    order_id, licence_id, key = await billing.metered_licence()
    charges = await billing.calls(licence_id, key, INCLUDED_CALLS + BILLED_CALLS)
    assert charges == [0] * INCLUDED_CALLS + [UNIT_PRICE_MINOR] * BILLED_CALLS
    buyer, provider = market.buyer_org["id"], market.provider_org["id"]
    month = usage_period(clock.now())
    await billing.books()
    assert await billing.held(f"buyer_receivable:{buyer}:CNY") == AMOUNT_MINOR
    assert await billing.held(f"usage_accrued:{order_id}:CNY") == AMOUNT_MINOR

    # the month has not ended: nothing to state yet
    assert await billing.run(usage_statements, clock.now()) == {"issued_statements": 0}
    ended = next_period_start(clock.now()) + timedelta(minutes=11)
    assert await billing.run(usage_statements, ended) == {"issued_statements": 1}
    assert await billing.run(usage_statements, ended) == {"issued_statements": 0}  # once per licence and month
    listed = await market.api.client.get(
        "/api/v1/usage-statements", params={"licence_id": licence_id}, headers=market.buyer.headers
    )
    assert listed.status_code == 200, listed.text
    [statement] = listed.json()["items"]
    assert statement | {"id": None, "created_at": None, "period_start": None, "period_end": None} == {
        "id": None,
        "licence_id": licence_id,
        "order_id": order_id,
        "buyer_organization_id": buyer,
        "provider_organization_id": provider,
        "period": month,
        "period_start": None,
        "period_end": None,
        "calls": INCLUDED_CALLS + BILLED_CALLS,
        "billable_calls": BILLED_CALLS,
        "amount_minor": AMOUNT_MINOR,
        "currency": "CNY",
        "status": "issued",
        "attempts": 0,
        "next_attempt_at": None,
        "created_at": None,
        "paid_at": None,
        "settled_at": None,
    }
    await billing.books()

    # collected: the buyer owes nothing more, the calls' money waits for settlement in the accrued usage
    assert await billing.run(collect_usage, ended) == {"paid": 1, "failed": 0, "waiting": 0, "suspended_licences": 0}
    assert await billing.run(collect_usage, ended) == {"paid": 0, "failed": 0, "waiting": 0, "suspended_licences": 0}
    check = await billing.books()
    assert (check.receivable_mismatches, check.accrued_mismatches) == ([], [])
    assert await billing.held(f"buyer_receivable:{buyer}:CNY") == 0
    assert await billing.held(f"usage_accrued:{order_id}:CNY") == AMOUNT_MINOR
    assert await billing.held("platform_clearing:CNY") == -(AMOUNT_MINOR + ORDER_PRICE_MINOR)
    [[charge_id, attempt, amount]] = billing.gateway.charges
    assert (str(charge_id), attempt, amount) == (statement["id"], 0, AMOUNT_MINOR)

    # settled to the provider less the fee, then paid out; the order's own price (1,000, its delivery's
    # confirmation window over within the month) settles in the same run
    done = await billing.run(settle, ended)
    assert done == {
        "cancelled_orders": 0,
        "auto_confirmed_orders": 1,
        "settled_orders": 1,
        "settled_charges": 1,
        "payouts": 1,
    }
    await billing.books()
    assert await billing.held(f"usage_accrued:{order_id}:CNY") == 0
    assert await billing.held(f"escrow:{order_id}:CNY") == 0
    assert await billing.held("platform_revenue:CNY") == FEE_MINOR + ORDER_FEE_MINOR
    assert await billing.held(f"provider_payable:{provider}:CNY") == 0
    paid_out = AMOUNT_MINOR - FEE_MINOR + ORDER_PRICE_MINOR - ORDER_FEE_MINOR
    assert await billing.held(f"payouts:{provider}:CNY") == paid_out == 10_450
    assert (await billing.run(settle, ended))["settled_charges"] == 0

    read = await market.api.client.get(f"/api/v1/usage-statements/{statement['id']}", headers=market.provider.headers)
    assert read.status_code == 200, read.text
    assert read.json()["status"] == ChargeStatus.PAID
    assert read.json()["paid_at"] is not None
    assert read.json()["settled_at"] is not None
    balance = await market.api.client.get(f"/api/v1/organizations/{provider}/balance", headers=market.provider.headers)
    assert balance.json()["paid_out_minor"] == paid_out
    assert await billing.events(statement["id"]) == ["usage_statement.issued", "usage_statement.paid"]


async def test_a_statement_is_its_parties_own(billing: Billing) -> None:
    market = billing.market
    _, licence_id, key = await billing.metered_licence()
    await billing.calls(licence_id, key, INCLUDED_CALLS + 2)
    ended = next_period_start(clock.now()) + timedelta(minutes=11)
    await billing.run(usage_statements, ended)
    [statement] = (await market.api.client.get("/api/v1/usage-statements", headers=market.buyer.headers)).json()[
        "items"
    ]
    assert (statement["billable_calls"], statement["amount_minor"]) == (2, 2 * UNIT_PRICE_MINOR)
    stranger = await market.api.person("Stranger")
    await market.api.admitted_organization(stranger, market.admin, kind="buyer", dsmm_level=3)
    for path in (f"/api/v1/usage-statements/{statement['id']}", f"/api/v1/usage-statements/{licence_id}"):
        response = await market.api.client.get(path, headers=stranger.headers)
        assert response.status_code == 404, response.text
    mine = await market.api.client.get("/api/v1/usage-statements", headers=stranger.headers)
    assert mine.json() == {"items": [], "total": 0}
    seen = await market.api.client.get("/api/v1/usage-statements", headers=market.admin.headers)
    assert [item["id"] for item in seen.json()["items"]] == [statement["id"]]


async def test_the_check_of_the_books_finds_usage_money_out_of_place(billing: Billing) -> None:
    """A statement marked settled without its settlement, or collected money the statement does not show: the check
    names the order's accrued usage, or the buyer's receivable."""
    market = billing.market
    order_id, licence_id, key = await billing.metered_licence()
    await billing.calls(licence_id, key, INCLUDED_CALLS + 4)
    ended = next_period_start(clock.now()) + timedelta(minutes=11)
    await billing.run(usage_statements, ended)
    await billing.run(collect_usage, ended)
    await billing.books()
    async with billing.runtime.transaction() as services:
        await services.session.execute(update(UsageStatement).values(settled_at=ended))
    async with billing.runtime.transaction() as services:
        check = await services.books.check()
    assert not check.ok
    [accrued] = check.accrued_mismatches
    assert (str(accrued.order_id), accrued.held_minor, accrued.expected_minor) == (order_id, 4 * UNIT_PRICE_MINOR, 0)
    async with billing.runtime.transaction() as services:
        await services.session.execute(update(UsageStatement).values(settled_at=None, status=ChargeStatus.ISSUED))
    async with billing.runtime.transaction() as services:
        check = await services.books.check()
    [owed] = check.receivable_mismatches
    assert (str(owed.organization_id), owed.owed_minor, owed.expected_minor) == (
        market.buyer_org["id"],
        0,
        4 * UNIT_PRICE_MINOR,
    )
    assert check.accrued_mismatches == []
