"""Orders reuse what they read of a listing while its rows are unchanged (PostgreSQL keeps it in memory under the
rows' versions): a change to one of them, the provider's suspension say, is judged by the very next order."""

from __future__ import annotations

import uuid

from sqlalchemy import update
from sqlmodel import col

from marketplace.accounts.models import Organization, OrganizationStatus
from tests.orders.conftest import Market


async def set_status(market: Market, status: OrganizationStatus) -> None:
    async with market.api.services() as services:
        organization_id = uuid.UUID(market.provider_org["id"])
        await services.session.execute(
            update(Organization).where(col(Organization.id) == organization_id).values(status=status)
        )


async def test_the_next_order_sees_the_provider_suspended_and_admitted_again(market: Market) -> None:
    await market.accepted_order()
    await market.accepted_order()  # the listing as read by the first

    await set_status(market, OrganizationStatus.SUSPENDED)
    refused = await market.place()
    assert refused.status_code == 422, refused.text
    failed = {f["check"] for f in refused.json()["findings"] if f["outcome"] == "fail"}
    assert "R7.provider-status" in failed

    await set_status(market, OrganizationStatus.ADMITTED)
    await market.accepted_order()


async def test_a_kept_listing_outlives_a_refused_order(market: Market) -> None:
    await market.accepted_order()
    refused = await market.place(plan_id=str(uuid.uuid4()))  # its transaction rolls back
    assert refused.status_code == 422, refused.text
    await market.accepted_order()
