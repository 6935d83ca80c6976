"""Settlement and refunds after it over HTTP: `POST /api/v1/admin/settlements`, `marketplace settle`,
`POST /api/v1/admin/orders/{id}/refund`, and the check of the books against the orders' escrow."""

from __future__ import annotations

import json
import uuid
from typing import Any

from marketplace.db import unit_of_work
from marketplace.kit.money import split, transfer_id
from marketplace.ledger.models import AccountCode, TransferKind
from marketplace.ledger.service import LedgerService
from tests.compliance.test_impact import run_cli
from tests.orders.conftest import PRICE_MINOR, Market

SHARE, FEE = split(PRICE_MINOR, 500)


async def completed(market: Market) -> str:
    order = await market.accepted_order()
    assert (await market.act(order["id"], "pay", market.buyer)).status_code == 200
    await market.take_delivery(order["id"])
    response = await market.act(order["id"], "confirm", market.buyer)
    assert response.status_code == 200, response.text
    return str(order["id"])


async def settle(market: Market, **headers: str) -> Any:
    response = await market.api.client.post("/api/v1/admin/settlements", headers={**market.admin.headers, **headers})
    assert response.status_code == 200, response.text
    return response.json()


async def refund(market: Market, order_id: str, **headers: str) -> Any:
    return await market.api.client.post(
        f"/api/v1/admin/orders/{order_id}/refund",
        json={"reason": "the buyer was charged for the wrong product"},
        headers={**market.admin.headers, **headers},
    )


async def balance(market: Market) -> Any:
    response = await market.api.client.get(
        f"/api/v1/organizations/{market.provider_org['id']}/balance", headers=market.provider.headers
    )
    assert response.status_code == 200, response.text
    return response.json()


async def books(market: Market) -> Any:
    response = await market.api.client.get("/api/v1/admin/ledger/check", headers=market.admin.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_settlement_pays_the_provider_its_share_and_the_books_balance(market: Market) -> None:
    order_id = await completed(market)
    report = await settle(market)
    assert report["settled_orders"] == 1
    [payout] = report["payouts"]
    assert payout["organization_id"] == market.provider_org["id"]
    assert (payout["currency"], payout["amount_minor"], payout["status"]) == ("CNY", SHARE, "sent")
    assert payout["reference"].startswith("local_transfer_")
    assert (await market.order(order_id))["status"] == "paid_out"
    assert await balance(market) == {
        "currency": "CNY",
        "available_minor": 0,
        "pending_minor": 0,
        "paid_out_minor": SHARE,
        "debt_minor": 0,
    }
    check = await books(market)
    assert (check["ok"], check["escrow_checked"], check["escrow_mismatches"]) == (True, True, [])
    again = await settle(market)
    assert (again["settled_orders"], again["payouts"], again["skipped"]) == (0, [], [])


async def test_only_administrators_run_settlement(market: Market) -> None:
    response = await market.api.client.post("/api/v1/admin/settlements", headers=market.provider.headers)
    assert response.status_code == 403
    assert (await market.api.client.post("/api/v1/admin/settlements")).status_code == 401


async def test_a_settlement_replayed_with_its_key_answers_what_it_did(market: Market) -> None:
    await completed(market)
    first = await settle(market, **{"Idempotency-Key": "settle-1"})
    replayed = await market.api.client.post(
        "/api/v1/admin/settlements", headers={**market.admin.headers, "Idempotency-Key": "settle-1"}
    )
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == first
    assert first["settled_orders"] == 1


async def test_the_settle_command_prints_the_same_report(market: Market) -> None:
    order_id = await completed(market)
    code, out = await run_cli(market.api, "settle")
    assert code == 0
    report = json.loads(out)
    assert report["settled_orders"] == 1
    assert [p["amount_minor"] for p in report["payouts"]] == [SHARE]
    assert (await market.order(order_id))["status"] == "paid_out"


async def test_a_refund_of_a_completed_order_comes_back_from_escrow(market: Market) -> None:
    order_id = await completed(market)
    response = await refund(market, order_id, **{"Idempotency-Key": "refund-1"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["refund_path"]) == ("refunded", "escrow")
    assert body["refund_reference"] == f"local_refund_{order_id.replace('-', '')}"
    replayed = await refund(market, order_id, **{"Idempotency-Key": "refund-1"})
    assert replayed.json() == body
    assert replayed.headers["Idempotent-Replayed"] == "true"
    again = await refund(market, order_id)
    assert again.status_code == 409
    assert again.json()["type"].endswith("order-invalid-transition")
    detail = await market.order(order_id)
    assert detail["history"][-1]["from_status"] == "completed"
    assert detail["history"][-1]["to_status"] == "refunded"
    audit = await market.api.client.get(
        "/api/v1/admin/audit", params={"object_id": order_id}, headers=market.admin.headers
    )
    refunded = [e for e in audit.json()["items"] if e["action"] == "order.refunded"]
    assert [e["payload"]["path"] for e in refunded] == ["escrow"]
    assert (await settle(market))["settled_orders"] == 0
    assert (await books(market))["ok"] is True


async def test_a_refund_after_payout_is_owed_by_the_provider_and_repaid_from_its_next_payout(market: Market) -> None:
    first = await completed(market)
    await settle(market)
    response = await refund(market, first)
    assert response.status_code == 200, response.text
    assert response.json()["refund_path"] == "provider_debt"
    assert (await balance(market))["debt_minor"] == SHARE
    assert (await books(market))["ok"] is True
    second = await completed(market)
    [payout] = (await settle(market))["payouts"]
    assert (payout["amount_minor"], payout["debt_repaid_minor"], payout["status"]) == (0, SHARE, "sent")
    assert (await market.order(second))["status"] == "paid_out"
    assert await balance(market) == {
        "currency": "CNY",
        "available_minor": 0,
        "pending_minor": 0,
        "paid_out_minor": SHARE,
        "debt_minor": 0,
    }
    assert (await books(market))["ok"] is True


async def test_only_completed_settled_or_paid_out_orders_are_refunded_here(market: Market) -> None:
    order = await market.accepted_order()
    response = await refund(market, order["id"])
    assert response.status_code == 409
    assert response.json()["current_status"] == "accepted"
    forbidden = await market.api.client.post(
        f"/api/v1/admin/orders/{order['id']}/refund", json={"reason": "mine"}, headers=market.buyer.headers
    )
    assert forbidden.status_code == 403


async def test_the_check_reports_an_escrow_that_differs_from_its_order(market: Market) -> None:
    order = await market.accepted_order()
    assert (await market.act(order["id"], "pay", market.buyer)).status_code == 200
    assert (await books(market))["ok"] is True
    async with unit_of_work(market.api.sessions) as session:  # a stray transfer out of the order's escrow
        ledger = LedgerService(session)
        order_id, provider_id = uuid.UUID(order["id"]), uuid.UUID(market.provider_org["id"])
        escrow = await ledger.account(AccountCode.ESCROW, "CNY", organization_id=provider_id, order_id=order_id)
        refunds = await ledger.account(AccountCode.REFUNDS, "CNY")
        await ledger.post(transfer_id(order_id, "stray"), escrow, refunds, 1, "CNY", TransferKind.REFUND)
    check = await books(market)
    assert check["ok"] is False
    assert check["escrow_mismatches"] == [
        {"order_id": order["id"], "currency": "CNY", "held_minor": PRICE_MINOR - 1, "expected_minor": PRICE_MINOR}
    ]
