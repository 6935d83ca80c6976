"""On PostgreSQL, the billing jobs run by several workers at once, and again, have one effect: one statement per
licence and month, collected once; one renewal per licence and period, charged once into the books and extending
the licence once; every collected charge settled once."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from marketplace.billing.models import ChargeStatus, SubscriptionRenewal, UsageStatement
from marketplace.delivery.models import next_period_start
from marketplace.jobs import collect_usage, renew_subscriptions, settle, usage_statements
from marketplace.kit import clock
from marketplace.ledger.models import Transfer, TransferKind
from tests.billing.conftest import INCLUDED_CALLS, SUBSCRIPTION_DAYS, Billing, Job

pytestmark = pytest.mark.postgres

WORKERS = 4


async def at_once(billing: Billing, job: Job, at: object) -> list[dict[str, int]]:
    """`job` run by WORKERS workers at the same moment, with the clock at `at`."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clock, "now", lambda: at)
        return list(await asyncio.gather(*(job(billing.runtime) for _ in range(WORKERS))))


async def count(billing: Billing, *where: object, model: type = Transfer) -> int:
    async with billing.runtime.transaction() as services:
        return int((await services.session.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


async def test_concurrent_and_repeated_jobs_make_one_of_each(billing: Billing, many_connections: None) -> None:
    market = billing.market
    _, licence_id, key = await billing.metered_licence()
    await billing.calls(licence_id, key, INCLUDED_CALLS + 5)
    _, order_id, licence = await billing.subscription()

    month_end = next_period_start(clock.now()) + timedelta(minutes=11)
    issued = await at_once(billing, usage_statements, month_end) + await at_once(billing, usage_statements, month_end)
    assert sum(run["issued_statements"] for run in issued) == 1
    assert await count(billing, model=UsageStatement) == 1
    collected = await at_once(billing, collect_usage, month_end) + await at_once(billing, collect_usage, month_end)
    assert sum(run["paid"] for run in collected) == 1
    assert await count(billing, col(UsageStatement.status) == ChargeStatus.PAID, model=UsageStatement) == 1
    await billing.books()
    assert await billing.held(f"buyer_receivable:{market.buyer_org['id']}:CNY") == 0

    renewal_due = max(month_end, billing_end(licence)) + timedelta(minutes=1)
    renewed = await at_once(billing, renew_subscriptions, renewal_due)
    renewed += await at_once(billing, renew_subscriptions, renewal_due)
    assert sum(run["renewed"] for run in renewed) == 1
    assert await count(billing, model=SubscriptionRenewal) == 1
    # money in: the two orders' payments, the statement's collection, the renewal's payment
    assert await count(billing, col(Transfer.kind) == TransferKind.PAYMENT) == 4
    after = await market.licence(order_id)
    assert after["ends_at"] != licence["ends_at"]
    assert (billing_end(after) - billing_end(licence)).days == SUBSCRIPTION_DAYS
    assert (await billing.events(licence["id"])).count("licence.renewed") == 1

    settled = await at_once(billing, settle, renewal_due) + await at_once(billing, settle, renewal_due)
    assert sum(run["settled_charges"] for run in settled) == 2
    # the metered order (delivered, confirmed by the sweep), the statement, the renewal; the subscription's own
    # order is paid and not delivered, so its price stays in its escrow
    assert await count(billing, col(Transfer.kind) == TransferKind.SETTLEMENT) == 3
    check = await billing.books()
    assert check.transfers == await count(billing)
    statement_id = (await market.api.client.get("/api/v1/usage-statements", headers=market.buyer.headers)).json()[
        "items"
    ][0]["id"]
    assert await billing.events(statement_id) == ["usage_statement.issued", "usage_statement.paid"]
    assert await count(billing, col(Transfer.kind) == TransferKind.USAGE) == 5


def billing_end(licence: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(licence["ends_at"]))
