"""A 30-day subscription renews at the end of each period: charged the plan's price through the gateway, its
money held in an escrow of its own, settled to the provider less the fee, its licence extended by a period. A
renewal declined keeps the licence working through the grace, then suspends it, then expires it."""

from __future__ import annotations

from datetime import datetime, timedelta

from marketplace.jobs import expire_licences, renew_subscriptions, settle
from tests.billing.conftest import SUBSCRIPTION_DAYS, SUBSCRIPTION_PRICE_MINOR, Billing

FEE_MINOR = 1_500  # 5 % of 30,000
PERIOD = timedelta(days=SUBSCRIPTION_DAYS)
NOTHING = {"renewed": 0, "failed": 0, "waiting": 0, "suspended_licences": 0, "expired_licences": 0}


def ends(licence: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(licence["ends_at"]))


async def test_renewed_twice_then_unpaid_suspended_then_expired(billing: Billing) -> None:
    market, settings = billing.market, billing.runtime.settings
    _, order_id, licence = await billing.subscription()
    provider, first_end = market.provider_org["id"], ends(licence)
    assert first_end - datetime.fromisoformat(licence["starts_at"]) == PERIOD
    assert await billing.run(renew_subscriptions, first_end - timedelta(minutes=1)) == NOTHING

    # two periods renewed, each charged once and settled once
    paid_out = 0
    for period in (1, 2):
        at = first_end + (period - 1) * PERIOD + timedelta(minutes=1)
        assert await billing.run(renew_subscriptions, at) == NOTHING | {"renewed": 1}
        assert await billing.run(renew_subscriptions, at) == NOTHING  # once per period
        licence = await market.licence(order_id)
        assert (ends(licence), licence["status"]) == (first_end + period * PERIOD, "active")
        await billing.books()
        done = await billing.run(settle, at)
        assert (done["settled_charges"], done["payouts"]) == (1, 1)
        paid_out += SUBSCRIPTION_PRICE_MINOR - FEE_MINOR
        await billing.books()
        assert await billing.held(f"payouts:{provider}:CNY") == paid_out
    assert [amount for _, _, amount in billing.gateway.charges] == [SUBSCRIPTION_PRICE_MINOR] * 2
    assert await billing.held("platform_revenue:CNY") == 2 * FEE_MINOR
    # the first period's price is the order's, still in its escrow until the order completes
    assert await billing.held(f"escrow:{order_id}:CNY") == SUBSCRIPTION_PRICE_MINOR

    # the third renewal is declined: the licence works through the grace, is suspended, then expires
    billing.gateway.declining = True
    third = first_end + 2 * PERIOD
    assert await billing.run(renew_subscriptions, third + timedelta(minutes=1)) == NOTHING | {"failed": 1}
    assert (await market.licence(order_id))["status"] == "active"
    grace = timedelta(seconds=settings.billing_grace_seconds)
    suspended = await billing.run(renew_subscriptions, third + grace + timedelta(minutes=1))
    assert suspended["suspended_licences"] == 1
    assert (await market.licence(order_id))["status"] == "suspended"
    await billing.books()
    suspension = timedelta(seconds=settings.subscription_suspension_seconds)
    expired = await billing.run(renew_subscriptions, third + grace + suspension + timedelta(minutes=1))
    assert expired["expired_licences"] == 1
    licence = await market.licence(order_id)
    assert (licence["status"], ends(licence)) == ("expired", third)
    await billing.books()
    assert await billing.run(renew_subscriptions, third + grace + suspension + PERIOD) == NOTHING
    assert await billing.events(licence["id"]) == [
        "licence.granted",
        "licence.renewed",
        "licence.renewed",
        "licence.suspended",
        "licence.expired",
    ]


async def test_a_subscription_outlives_its_end_only_through_its_renewal(billing: Billing) -> None:
    """The licence expiry job leaves a subscription to its renewal: past its end, it is renewed, not expired."""
    market = billing.market
    _, order_id, licence = await billing.subscription()
    after = ends(licence) + timedelta(minutes=1)
    assert await billing.run(expire_licences, after) == {"expired_licences": 0}
    assert (await market.licence(order_id))["status"] == "active"
    assert (await billing.run(renew_subscriptions, after))["renewed"] == 1
    assert ends(await market.licence(order_id)) == ends(licence) + PERIOD
