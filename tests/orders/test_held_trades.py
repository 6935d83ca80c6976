"""An administrator's decision on a trade the gate held for review, through its route
(`POST /api/v1/admin/orders/{id}/decision`): approving reserves the licences it asks for (none left: 409,
and it stays held); rejecting holds nothing; only held orders are decided."""

from __future__ import annotations

import uuid
from pathlib import Path

from marketplace.demo.factories import licence_terms
from tests.orders.conftest import Market, listed_product
from tests.orders.factories import licences_remaining
from tests.orders.test_admin_trades import held_for_review

DECISION = "/api/v1/admin/orders/{}/decision"


async def limited_market(market: Market, licences: int) -> Market:
    product_id, plan_id = await listed_product(
        market.api, market.provider, market.provider_org["id"], licence=licence_terms(max_licences=licences)
    )
    market.product_id, market.plan_id = product_id, plan_id
    return market


async def decide(market: Market, order_id: str, decision: str) -> tuple[int, dict[str, object]]:
    response = await market.api.client.post(
        DECISION.format(order_id), json={"decision": decision, "reason": "reviewed"}, headers=market.admin.headers
    )
    return response.status_code, response.json()


async def test_approving_a_held_trade_reserves_its_licences(market: Market, tmp_path: Path) -> None:
    market = await limited_market(market, 2)
    order_id = await held_for_review(market, market.buyer, market.buyer_org["id"], ["R1"], tmp_path)
    product = uuid.UUID(market.product_id)
    assert await licences_remaining(market.api.sessions, product) == 2  # held: nothing reserved yet
    status, order = await decide(market, order_id, "approve")
    assert (status, order["status"], order["licences_reserved"]) == (200, "accepted", 1)
    assert await licences_remaining(market.api.sessions, product) == 1
    again, _ = await decide(market, order_id, "approve")
    assert again == 409  # decided once
    assert await licences_remaining(market.api.sessions, product) == 1


async def test_approving_a_held_trade_whose_licences_are_gone_is_refused(market: Market, tmp_path: Path) -> None:
    market = await limited_market(market, 1)
    order_id = await held_for_review(market, market.buyer, market.buyer_org["id"], ["R1"], tmp_path)
    taken = await market.accepted_order()  # the last licence goes to another order meanwhile
    assert taken["licences_reserved"] == 1
    status, problem = await decide(market, order_id, "approve")
    assert (status, problem["type"]) == (409, "urn:marketplace:problem:order-sold-out")
    assert (await market.order(order_id))["status"] == "pending_review"
    assert await licences_remaining(market.api.sessions, uuid.UUID(market.product_id)) == 0


async def test_rejecting_a_held_trade_holds_nothing(market: Market, tmp_path: Path) -> None:
    market = await limited_market(market, 2)
    order_id = await held_for_review(market, market.buyer, market.buyer_org["id"], ["R1"], tmp_path)
    status, order = await decide(market, order_id, "reject")
    assert (status, order["status"], order["licences_reserved"]) == (200, "rejected", 0)
    assert await licences_remaining(market.api.sessions, uuid.UUID(market.product_id)) == 2
    accepted = await market.accepted_order()
    status, _ = await decide(market, accepted["id"], "approve")
    assert status == 409  # only held orders are decided
