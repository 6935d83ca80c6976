"""The trade path over HTTP: preview, the gate, every transition, who may see and do what."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from litestar._kwargs import kwargs_model

from marketplace.compliance.contract import Decision, Finding, Outcome, Stage
from marketplace.compliance.engine import Verdict
from marketplace.compliance.schemas import VerdictBrief
from marketplace.kit import clock
from marketplace.kit.i18n import Language
from tests.orders.conftest import PRICE_MINOR, Market


async def test_an_orders_dependencies_resolve_one_at_a_time(market: Market, monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller, the flow and the language (one depth of the route's dependencies) resolve one after another,
    with no task group of their own (`web.dependencies`), and the order is placed."""

    def no_task_group() -> None:
        raise AssertionError("a task group was made to resolve dependencies")

    monkeypatch.setattr(kwargs_model, "create_task_group", no_task_group)

    await market.accepted_order()


async def test_preview_gives_the_verdict_placing_gives_and_writes_nothing(market: Market) -> None:
    api = market.api
    preview = await api.client.post("/api/v1/compliance/preview", json=market.trade(), headers=market.buyer.headers)
    assert preview.status_code == 200, preview.text
    listed = await api.client.get("/api/v1/orders", headers=market.buyer.headers)
    assert listed.json()["total"] == 0
    placed = await market.place()
    assert placed.status_code == 201, placed.text
    body = placed.json()
    assert body["verdict"]["decision"] == preview.json()["decision"] == "accepted"
    assert body["verdict"]["rulebook_fingerprint"] == preview.json()["rulebook_fingerprint"]
    assert (body["amount_minor"], body["currency"]) == (PRICE_MINOR, "CNY")
    # the answer names the findings that did not pass; the order keeps the whole verdict
    whole = (await market.order(body["id"]))["verdict"]
    assert [f["check"] for f in whole["findings"]] == [f["check"] for f in preview.json()["findings"]]
    assert (whole["id"], whole["decision"]) == (body["verdict"]["id"], "accepted")
    assert body["verdict"]["findings"] == [f for f in whole["findings"] if f["outcome"] in ("fail", "review")]


def test_the_answers_verdict_keeps_the_findings_that_did_not_pass() -> None:
    findings = tuple(
        Finding("R1", f"R1.{outcome.value}", outcome, f"{outcome.value} finding", {"n": 1}, ("basis",))
        for outcome in Outcome
    )
    verdict = Verdict(Stage.TRADE, Decision.REVIEW, findings, "f" * 64, clock.now())
    verdict_id = uuid.uuid4()
    brief = VerdictBrief.of(verdict, verdict_id, Language.EN).model_dump(mode="json")
    assert (brief["id"], brief["decision"], brief["rulebook_fingerprint"]) == (str(verdict_id), "review", "f" * 64)
    shown = [f.as_json() for f in findings if f.outcome in (Outcome.FAIL, Outcome.REVIEW)]
    # as read back: the message rendered (no params), `follows_from` always present
    read = [{**{k: v for k, v in f.items() if k != "params"}, "follows_from": f.get("follows_from")} for f in shown]
    assert brief["findings"] == read


async def test_a_rejected_trade_answers_422_with_findings_and_reserves_nothing(market: Market) -> None:
    preview = await market.api.client.post(
        "/api/v1/compliance/preview", json=market.trade(scenario="credit_scoring"), headers=market.buyer.headers
    )
    assert preview.json()["decision"] == "rejected"
    response = await market.place(scenario="credit_scoring")
    assert response.status_code == 422, response.text
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert problem["type"].endswith("trade-rejected")
    failed = {f["check"] for f in problem["findings"] if f["outcome"] == "fail"}
    assert failed == {f["check"] for f in preview.json()["findings"] if f["outcome"] == "fail"}
    order = await market.order(problem["order_id"])
    assert (order["status"], order["licences_reserved"]) == ("rejected", 0)


async def test_the_whole_happy_path_moves_the_money_into_escrow(market: Market) -> None:
    order = await market.accepted_order()
    paid = await market.act(order["id"], "pay", market.buyer)
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "paid"
    assert paid.json()["payment"]["gateway"] == "local"
    balance = await market.api.client.get(
        f"/api/v1/organizations/{market.provider_org['id']}/balance", headers=market.provider.headers
    )
    assert balance.json()["pending_minor"] == PRICE_MINOR
    await market.take_delivery(order["id"])
    assert (await market.order(order["id"]))["status"] == "delivered"
    assert (await market.act(order["id"], "confirm", market.buyer)).json()["status"] == "completed"
    detail = await market.order(order["id"])
    assert [(e["from_status"], e["to_status"]) for e in detail["history"]] == [
        (None, "accepted"),
        ("accepted", "paid"),
        ("paid", "delivered"),
        ("delivered", "completed"),
    ]


async def test_a_transition_applies_once(market: Market) -> None:
    order = await market.accepted_order()
    assert (await market.act(order["id"], "pay", market.buyer)).status_code == 200
    again = await market.act(order["id"], "pay", market.buyer)
    assert again.status_code == 409
    assert again.json()["status"] == 409
    assert (await market.act(order["id"], "confirm", market.buyer)).status_code == 409


async def test_dispute_then_refund_returns_the_escrow(market: Market) -> None:
    order = await market.accepted_order()
    await market.act(order["id"], "pay", market.buyer)
    disputed = await market.act(order["id"], "dispute", market.buyer, {"reason": "rows missing"})
    assert disputed.json()["status"] == "disputed"
    resolved = await market.api.client.post(
        f"/api/v1/admin/orders/{order['id']}/resolve-dispute",
        json={"outcome": "refund", "reason": "provider could not deliver"},
        headers=market.admin.headers,
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "refunded"
    balance = await market.api.client.get(
        f"/api/v1/organizations/{market.provider_org['id']}/balance", headers=market.provider.headers
    )
    assert balance.json()["pending_minor"] == 0


async def test_cancel_releases_the_licence(market: Market, api: Any) -> None:
    order = await market.accepted_order()
    cancelled = await market.act(order["id"], "cancel", market.buyer, {"reason": "changed our mind"})
    assert cancelled.json()["status"] == "cancelled"
    assert (await market.act(order["id"], "pay", market.buyer)).status_code == 409


async def test_another_buyer_sees_none_of_it(market: Market) -> None:
    order = await market.accepted_order()
    stranger = await market.api.person("Stranger")
    await market.api.admitted_organization(stranger, market.admin, kind="buyer")
    for action in ("pay", "confirm", "cancel"):
        assert (await market.act(order["id"], action, stranger)).status_code == 404
    assert (await market.act(order["id"], "dispute", stranger, {"reason": "x"})).status_code == 404
    assert (await market.api.client.get(f"/api/v1/orders/{order['id']}", headers=stranger.headers)).status_code == 404
    listed = await market.api.client.get("/api/v1/orders", headers=stranger.headers)
    assert listed.json()["total"] == 0
    # and may not order for an organisation it is not a member of
    assert (await market.place(as_=stranger)).status_code == 404


async def test_idempotency_key_replays_refuses_other_bodies(market: Market) -> None:
    first = await market.place(key="order-1")
    again = await market.place(key="order-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    other = await market.place(key="order-1", quantity=2)
    assert other.status_code == 422
    assert other.json()["type"].endswith("idempotency-key-reused")
    listed = await market.api.client.get("/api/v1/orders", headers=market.buyer.headers)
    assert listed.json()["total"] == 1
