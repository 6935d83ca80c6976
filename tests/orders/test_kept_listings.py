"""Orders reuse what they read of a listing while its rows are unchanged (PostgreSQL keeps it in memory under the
rows' versions): a change to one of them, the provider's suspension say, is judged by the very next order."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col

from marketplace.accounts.models import Organization, OrganizationStatus
from marketplace.compliance.service import FINDINGS
from marketplace.orders.repository import OrderRepository, Placed
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


async def test_orders_on_the_same_facts_store_the_same_findings_until_the_buyer_is_edited(market: Market) -> None:
    """The trade stage's findings are kept by the facts they judged: the second order on the same facts stores
    the first one's findings; once the buyer's organisation is edited, the next order is judged on its new facts."""
    first, second = [await market.order((await market.accepted_order())["id"]) for _ in range(2)]
    assert second["verdict"]["findings"] == first["verdict"]["findings"]

    async with market.api.services() as services:
        buyer_id = uuid.UUID(market.buyer_org["id"])
        await services.session.execute(
            update(Organization).where(col(Organization.id) == buyer_id).values(status=OrganizationStatus.SUSPENDED)
        )
    refused = await market.place()

    assert refused.status_code == 422, refused.text
    failed = {f["check"] for f in refused.json()["findings"] if f["outcome"] == "fail"}
    assert any("buyer" in check for check in failed), failed


@pytest.mark.postgres
async def test_an_order_judged_on_a_kept_listing_that_changed_is_judged_again(
    market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The order route judges an order of an unlimited product on the kept listing without reading it, and its
    placement statement checks the listing is unchanged: when the provider was suspended meanwhile, that
    statement writes nothing, and the order is judged again on the listing read afresh."""
    outcomes: list[Placed] = []
    placed = OrderRepository.insert_placed

    async def watched(self: OrderRepository, *args: Any, **kwargs: Any) -> Placed:
        outcomes.append(await placed(self, *args, **kwargs))
        return outcomes[-1]

    monkeypatch.setattr(OrderRepository, "insert_placed", watched)
    await market.accepted_order()
    await market.accepted_order()
    assert outcomes == [Placed.WRITTEN, Placed.WRITTEN]

    await set_status(market, OrganizationStatus.SUSPENDED)
    refused = await market.place(key="after-the-change")
    assert refused.status_code == 422, refused.text
    assert "R7.provider-status" in {f["check"] for f in refused.json()["findings"] if f["outcome"] == "fail"}
    assert outcomes[2:] == [Placed.LISTING_CHANGED, Placed.WRITTEN]  # the rejected attempt is kept, once
    replayed = await market.place(key="after-the-change")
    assert (replayed.status_code, replayed.json()) == (422, refused.json())


async def test_a_verdict_not_stored_is_not_counted_in_the_metrics(market: Market) -> None:
    """An order judged on a kept listing that changed is judged again: only the verdict stored counts its failed
    checks in `marketplace_verdict_findings_total`, not the first one too."""
    await market.accepted_order()
    await market.accepted_order()
    await set_status(market, OrganizationStatus.SUSPENDED)

    def counted() -> float:
        return FINDINGS.labels("trade", "R1", "fail")._value.get()

    before = counted()
    # a scenario the product does not permit: R1 fails the trade on the kept listing and on the changed one
    refused = await market.place(key="not-permitted", scenario="credit_scoring")
    assert refused.status_code == 422, refused.text
    failed = [f for f in refused.json()["findings"] if f["rule_id"] == "R1" and f["outcome"] == "fail"]
    assert failed
    assert counted() - before == len(failed)
