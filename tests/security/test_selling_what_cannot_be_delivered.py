"""Hole 12, selling what cannot be delivered: a product listed for file delivery with no hosted dataset was
accepted at preview and paid for, then `/delivery` answered 409 `dataset-not-hosted`. Every delivery mode
delivers from the version's hosted dataset, so R1 lists a version offering one only with it
(`R1.dataset-hosted`), and the trade stage refuses a version listed without it, preview included, saying why.
An edit's new version delivers the dataset its carried-over digest names."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest

from marketplace.accounts.principal import Principal
from marketplace.compliance.rulebook import load_rulebook
from tests.delivery.conftest import COMPUTATION, FIELDS
from tests.fixtures.api import DATASET
from tests.orders.conftest import Market, submitted_product
from tests.security.test_schema_judging_what_a_rule_should import assert_stored, failed
from tests.test_bad_input import assert_problem, row_counts

MODES = [
    pytest.param({"delivery_modes": ["file"]}, id="file"),
    pytest.param({"delivery_modes": ["api"], "fields": FIELDS}, id="api"),
    pytest.param(
        {"delivery_modes": ["privacy_computing"], "fields": FIELDS, "computation": COMPUTATION}, id="privacy-computing"
    ),
]
NOT_HOSTED = "its dataset is not hosted: nothing could be delivered until the provider uploads it"
# What a trade moves once accepted and paid: none of it may change for a refused one.
TRADE_TABLES = ("licence", "ledger_transfer", "access_key", "delivery_receipt")


async def list_under_a_rulebook_that_does_not_ask(market: Market, product_id: str, tmp_path: Path) -> None:
    """The version listed as it could be before R1 asked for the dataset, or under an operator's rulebook where
    R1 only warns: its verdict records the failure and decides nothing."""
    config = tmp_path / "lenient.toml"
    config.write_text('[rules.R1]\nseverity = "warn"\n')
    async with market.api.services(rulebook=load_rulebook(config)) as services:
        view, _ = await services.listing.submit(Principal(user_id=uuid.UUID(market.provider.id)), uuid.UUID(product_id))
    assert view.product.status.value == "listed"


@pytest.mark.parametrize("offer", MODES)
async def test_a_version_offering_delivery_without_its_dataset_is_not_listed(
    market: Market, offer: dict[str, Any]
) -> None:
    api, provider = market.api, market.provider
    product_id, _, answer = await submitted_product(api, provider, market.provider_org["id"], dataset=None, **offer)
    assert answer["status"] == "rejected"
    finding = failed(answer["verdict"], "R1.dataset-hosted")
    assert finding["evidence"] == {"delivery_modes": offer["delivery_modes"], "content_sha256": None}
    assert NOT_HOSTED in finding["message"]
    await assert_stored(api, market.admin, product_id, answer["verdict"], "R1.dataset-hosted")
    assert (await api.client.get(f"/api/v1/products/{product_id}", headers=market.buyer.headers)).status_code == 404

    hosted = await api.host_dataset(provider, product_id)
    again = await api.client.post(f"/api/v1/products/{product_id}/submit", headers=provider.headers)
    assert again.json()["status"] == "listed", again.json()["verdict"]
    assert (
        failed(again.json()["verdict"], "R1.dataset-hosted", "pass")["evidence"]["content_sha256"] == (hosted["sha256"])
    )


async def test_a_version_listed_without_its_dataset_is_not_traded_and_the_trade_stage_says_why(
    market: Market, tmp_path: Path
) -> None:
    api = market.api
    provider_org = market.provider_org["id"]
    product_id, plan_id, refused = await submitted_product(api, market.provider, provider_org, dataset=None)
    assert refused["status"] == "rejected"
    await list_under_a_rulebook_that_does_not_ask(market, product_id, tmp_path)
    trade = market.trade(product_id=product_id, plan_id=plan_id)

    preview = await api.client.post("/api/v1/compliance/preview", json=trade, headers=market.buyer.headers)
    assert preview.status_code == 200, preview.text
    assert preview.json()["decision"] == "rejected"
    assert NOT_HOSTED in failed(preview.json(), "R1.dataset-hosted")["message"]

    before = await row_counts(api)
    placed = await market.place(product_id=product_id, plan_id=plan_id)
    problem = assert_problem(placed, 422)
    assert problem["type"].endswith("trade-rejected")
    assert "R1.dataset-hosted" in problem["detail"]
    assert NOT_HOSTED in failed(problem, "R1.dataset-hosted")["message"]
    order = await market.order(problem["order_id"])
    assert (order["status"], order["licences_reserved"]) == ("rejected", 0)
    assert (await market.act(order["id"], "pay", market.buyer)).status_code == 409
    after = await row_counts(api)
    assert {table: after[table] for table in TRADE_TABLES} == {table: before[table] for table in TRADE_TABLES}

    # The trade stage reads what is hosted now: once the provider uploads the dataset, the version sells.
    await api.host_dataset(market.provider, product_id)
    now = await api.client.post("/api/v1/compliance/preview", json=trade, headers=market.buyer.headers)
    assert now.json()["decision"] == "accepted", now.json()["findings"]


async def test_an_edited_version_delivers_the_dataset_its_digest_names(market: Market) -> None:
    """An edit makes version 2, which carries version 1's registered digest (and can register no other): R1
    lists it, and delivery serves version 1's hosted file for it, where it used to answer 409."""
    api, provider = market.api, market.provider
    product = f"/api/v1/products/{market.product_id}"
    edited = await api.client.patch(product, json={"title": "Guiyang arterial traffic, v2"}, headers=provider.headers)
    assert edited.json()["version"] == 2, edited.text
    submitted = await api.client.post(f"{product}/submit", headers=provider.headers)
    assert submitted.json()["status"] == "listed", submitted.json()["verdict"]
    assert submitted.json()["version"] == 2

    listed = await api.client.get(product, headers=market.buyer.headers)
    order = await market.accepted_order(plan_id=listed.json()["plans"][0]["id"])
    assert order["plan_id"] != market.plan_id  # version 2's copy of the plan: version 2 is what was sold
    paid = await market.act(order["id"], "pay", market.buyer)
    assert paid.status_code == 200, paid.text
    delivery = await api.client.get(f"/api/v1/orders/{order['id']}/delivery", headers=market.buyer.headers)
    assert delivery.status_code == 200, delivery.text
    download = await api.client.get(delivery.json()["download_url"])
    assert download.status_code == 200, download.text
    assert download.content == DATASET
    assert download.headers["x-content-sha256"] == hashlib.sha256(DATASET).hexdigest()
