"""Administrators' trade queries: `GET /api/v1/admin/trades`, its filters, and its CSV and JSON-lines exports."""

from __future__ import annotations

import csv
import io
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select
from sqlmodel import col

from marketplace.accounts.principal import Principal
from marketplace.api import orders as controllers
from marketplace.compliance.rulebook import load_rulebook
from marketplace.db import unit_of_work
from marketplace.kit import clock
from marketplace.orders.models import Order
from marketplace.orders.schemas import TradeRead, TradeRequest
from tests.fixtures.api import Person
from tests.orders.conftest import Market, listed_product

TRADES = "/api/v1/admin/trades"
EXPORT = "/api/v1/admin/trades/export"
COLUMNS = [
    "id",
    "created_at",
    "status",
    "decision",
    "flagged_rules",
    "buyer",
    "provider",
    "product",
    "version",
    "plan",
    "scenario",
    "delivery_mode",
    "quantity",
    "amount_minor",
    "currency",
    "fee_bps",
    "status_changed_at",
]


@dataclass
class Book:
    """Four trades: accepted, rejected (before `mark`); paid from a second provider, held for review (after)."""

    market: Market
    accepted: str
    rejected: str
    paid: str
    held: str
    flagged: list[str]
    mark: str
    other_buyer: str
    other_provider: str
    other_product: str

    async def ids(self, **params: Any) -> set[str]:
        response = await self.market.api.client.get(TRADES, params=params, headers=self.market.admin.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total"] == len(body["items"])
        return {item["id"] for item in body["items"]}


async def held_for_review(market: Market, buyer: Person, buyer_org: str, rules: list[str], tmp_path: Path) -> str:
    """An order the trade stage holds for review: the rules that reject a trade set to `review` severity."""
    config = tmp_path / "review.toml"
    config.write_text("".join(f'[rules.{rule}]\nseverity = "review"\n' for rule in rules))
    async with market.api.services(rulebook=load_rulebook(config)) as services:
        request = TradeRequest.model_validate(market.trade(buyer_organization_id=buyer_org, scenario="credit_scoring"))
        placed = await services.trading.place(Principal(user_id=uuid.UUID(buyer.id)), request)
    assert placed.order.status.value == "pending_review", placed.verdict.as_json()
    return str(placed.order.id)


@pytest.fixture
async def book(market: Market, tmp_path: Path) -> Book:
    api = market.api
    accepted = (await market.accepted_order())["id"]
    rejected_response = await market.place(scenario="credit_scoring")
    assert rejected_response.status_code == 422, rejected_response.text
    rejected = rejected_response.json()["order_id"]
    flagged = (await market.order(rejected))["flagged_rules"]
    assert flagged
    mark = clock.now().isoformat()

    other_provider = await api.person("Other provider")
    other_provider_org = await api.admitted_organization(other_provider, market.admin, kind="provider", dsmm_level=3)
    other_product, other_plan = await listed_product(api, other_provider, other_provider_org["id"])
    other_buyer = await api.person("Other buyer")
    other_buyer_org = await api.admitted_organization(other_buyer, market.admin, kind="buyer", dsmm_level=3)
    paid = (
        await market.accepted_order(
            product_id=other_product, plan_id=other_plan, buyer_organization_id=other_buyer_org["id"], as_=other_buyer
        )
    )["id"]
    assert (await market.act(paid, "pay", other_buyer)).status_code == 200
    held = await held_for_review(market, other_buyer, other_buyer_org["id"], flagged, tmp_path)
    return Book(
        market,
        accepted,
        rejected,
        paid,
        held,
        flagged,
        mark,
        other_buyer_org["id"],
        other_provider_org["id"],
        other_product,
    )


async def test_each_filter_narrows_the_trades(book: Book) -> None:
    market = book.market
    everything = {book.accepted, book.rejected, book.paid, book.held}
    assert await book.ids() == everything

    assert await book.ids(status="accepted") == {book.accepted}
    assert await book.ids(status="paid") == {book.paid}
    assert await book.ids(status="pending_review") == {book.held}
    assert await book.ids(status="completed") == set()

    assert await book.ids(outcome="accepted") == {book.accepted, book.paid}
    assert await book.ids(outcome="rejected") == {book.rejected}
    assert await book.ids(outcome="review") == {book.held}

    rule = book.flagged[0]
    assert await book.ids(rule_id=rule) == {book.rejected, book.held}
    # an element of the list, never part of one: no prefix, no extension of a flagged id
    assert await book.ids(rule_id=rule[:-1]) == set()
    assert await book.ids(rule_id=rule + "0") == set()

    assert await book.ids(provider=market.provider_org["id"]) == {book.accepted, book.rejected, book.held}
    assert await book.ids(provider=book.other_provider) == {book.paid}
    assert await book.ids(buyer=market.buyer_org["id"]) == {book.accepted, book.rejected}
    assert await book.ids(buyer=book.other_buyer) == {book.paid, book.held}
    assert await book.ids(product=book.other_product) == {book.paid}
    assert await book.ids(product=market.product_id) == {book.accepted, book.rejected, book.held}
    # the provider's own id is not a buyer
    assert await book.ids(buyer=market.provider_org["id"]) == set()

    assert await book.ids(since=book.mark) == {book.paid, book.held}
    assert await book.ids(until=book.mark) == {book.accepted, book.rejected}
    assert await book.ids(since=book.mark, until=book.mark) == set()

    # filters combine
    assert await book.ids(buyer=book.other_buyer, outcome="review", rule_id=rule) == {book.held}
    assert await book.ids(buyer=market.buyer_org["id"], status="paid") == set()


async def test_the_json_answer_is_a_page_of_trades_newest_first(book: Book) -> None:
    market = book.market
    response = await market.api.client.get(TRADES, params={"limit": 2}, headers=market.admin.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["total"], body["limit"], body["offset"]) == (4, 2, 0)
    assert [item["id"] for item in body["items"]] == [book.held, book.paid]
    assert list(body["items"][0]) == COLUMNS
    rest = await market.api.client.get(TRADES, params={"limit": 2, "offset": 2}, headers=market.admin.headers)
    assert [item["id"] for item in rest.json()["items"]] == [book.rejected, book.accepted]

    [rejected] = (
        await market.api.client.get(TRADES, params={"outcome": "rejected"}, headers=market.admin.headers)
    ).json()["items"]
    assert rejected["decision"] == "rejected"
    assert rejected["status"] == "rejected"
    assert rejected["flagged_rules"] == book.flagged
    assert rejected["buyer"] == market.buyer_org["id"]
    assert rejected["provider"] == market.provider_org["id"]
    assert rejected["product"] == market.product_id
    assert rejected["plan"] == market.plan_id
    assert rejected["scenario"] == "credit_scoring"

    too_big = await market.api.client.get(TRADES, params={"limit": 201}, headers=market.admin.headers)
    assert too_big.status_code == 400


async def test_only_administrators_query_trades(market: Market) -> None:
    await market.accepted_order()
    client = market.api.client
    for path, params in ((TRADES, {}), (EXPORT, {"format": "csv"}), (EXPORT, {"format": "jsonl"})):
        assert (await client.get(path, params=params, headers=market.buyer.headers)).status_code == 403
        assert (await client.get(path, params=params, headers=market.provider.headers)).status_code == 403
        assert (await client.get(path, params=params)).status_code == 401


async def test_bad_filters_are_refused(market: Market) -> None:
    client, headers = market.api.client, market.admin.headers
    for params in (
        {"rule_id": 'R1"'},
        {"rule_id": "R1%"},
        {"status": "lost"},
        {"outcome": "maybe"},
        {"since": "yesterday"},
        {"until": "1700000000"},
        {"buyer": "not-a-uuid"},
    ):
        for path in (TRADES, EXPORT):
            response = await client.get(path, params=params, headers=headers)
            assert response.status_code == 400, (path, params, response.text)
    assert (await client.get(EXPORT, params={"format": "xml"}, headers=headers)).status_code == 400


def _attachment(response: httpx.Response, suffix: str) -> None:
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;"), disposition
    assert disposition.endswith(f'.{suffix}"'), disposition


async def test_csv_export_has_the_header_and_every_matching_trade(book: Book) -> None:
    market = book.market
    response = await market.api.client.get(EXPORT, params={"format": "csv"}, headers=market.admin.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    _attachment(response, "csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == COLUMNS
    records = [dict(zip(COLUMNS, row, strict=True)) for row in rows[1:]]
    assert {r["id"] for r in records} == {book.accepted, book.rejected, book.paid, book.held}
    [rejected] = [r for r in records if r["id"] == book.rejected]
    assert rejected["flagged_rules"].split(" ") == book.flagged
    assert (rejected["decision"], rejected["status"]) == ("rejected", "rejected")
    assert rejected["scenario"] == "credit_scoring"
    assert int(rejected["amount_minor"]) > 0
    assert rejected["currency"] == "CNY"

    narrowed = await market.api.client.get(
        EXPORT, params={"format": "csv", "outcome": "review"}, headers=market.admin.headers
    )
    rows = list(csv.reader(io.StringIO(narrowed.text)))
    assert rows[0] == COLUMNS
    assert [row[0] for row in rows[1:]] == [book.held]

    nothing = await market.api.client.get(
        EXPORT, params={"format": "csv", "status": "refunded"}, headers=market.admin.headers
    )
    assert list(csv.reader(io.StringIO(nothing.text))) == [COLUMNS]


async def test_jsonl_export_has_one_trade_a_line(book: Book) -> None:
    market = book.market
    response = await market.api.client.get(
        EXPORT, params={"format": "jsonl", "provider": market.provider_org["id"]}, headers=market.admin.headers
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    _attachment(response, "jsonl")
    assert response.text.endswith("\n")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert {line["id"] for line in lines} == {book.accepted, book.rejected, book.held}
    for line in lines:
        assert list(line) == COLUMNS
        TradeRead.model_validate(line)
    [held] = [line for line in lines if line["id"] == book.held]
    assert (held["decision"], held["status"], held["flagged_rules"]) == ("review", "pending_review", book.flagged)


async def test_exports_hold_every_match_beyond_one_page(market: Market, monkeypatch: pytest.MonkeyPatch) -> None:
    """More trades than the largest page, exported in several batches: each one once."""
    first = (await market.accepted_order())["id"]
    async with unit_of_work(market.api.sessions) as session:
        order = (await session.scalars(select(Order).where(col(Order.id) == uuid.UUID(first)))).one()
        template = order.model_dump()
        copies = [{**template, "id": uuid.uuid4(), "created_at": clock.now()} for _ in range(250)]
        await session.execute(insert(Order), copies)
    expected = {first, *(str(c["id"]) for c in copies)}
    monkeypatch.setattr(controllers, "EXPORT_BATCH", 60)
    client, headers = market.api.client, market.admin.headers

    page = (await client.get(TRADES, params={"limit": 200}, headers=headers)).json()
    assert (page["total"], len(page["items"])) == (251, 200)

    exported = await client.get(EXPORT, params={"format": "csv", "limit": 1}, headers=headers)
    rows = list(csv.reader(io.StringIO(exported.text)))
    ids = [row[0] for row in rows[1:]]
    assert len(ids) == len(set(ids)) == 251
    assert set(ids) == expected
    assert ids == sorted(ids, key=uuid.UUID)

    lines = (await client.get(EXPORT, params={"format": "jsonl", "offset": 100}, headers=headers)).text.splitlines()
    assert {json.loads(line)["id"] for line in lines} == expected

    # batch edges: a match count that is an exact multiple of the batch size
    monkeypatch.setattr(controllers, "EXPORT_BATCH", 251)
    exact = await client.get(EXPORT, params={"format": "jsonl"}, headers=headers)
    assert len(exact.text.splitlines()) == 251
