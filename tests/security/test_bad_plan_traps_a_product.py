"""Hole 13, a bad plan traps a product: plans could be neither edited nor retired, so a product whose first
plan lacked a pricing basis was rejected forever. Providers retire a plan and add another (a plan sold stays
on the orders that bought it); a `free` plan with a price is refused."""

from __future__ import annotations

from typing import Any

from marketplace.demo.factories import plan_body, product_body
from tests.catalog.test_products import CLEAN_SAMPLE, upload
from tests.fixtures.api import Api
from tests.orders.conftest import Market, listed_product


async def draft(api: Api, market: Market) -> tuple[str, dict[str, Any]]:
    created = await api.client.post(
        "/api/v1/products",
        json=_body(market),
        headers=market.provider.headers,
    )
    assert created.status_code == 201, created.text
    product_id = created.json()["id"]
    sample = await upload(api, market.provider, product_id, "sample.csv", CLEAN_SAMPLE, "text/csv")
    assert sample.status_code == 201, sample.text
    await api.host_dataset(market.provider, product_id)
    return product_id, created.json()


def _body(market: Market) -> dict[str, Any]:
    return product_body(market.provider_org["id"])


async def test_a_rejected_plan_is_retired_and_the_product_lists_with_another(market: Market) -> None:
    api, headers = market.api, market.provider.headers
    product_id, _ = await draft(api, market)
    bad = await api.client.post(
        f"/api/v1/products/{product_id}/plans", json=plan_body(90_000, pricing_basis=None), headers=headers
    )
    assert bad.status_code == 201, bad.text
    rejected = await api.client.post(f"/api/v1/products/{product_id}/submit", headers=headers)
    assert rejected.json()["status"] == "rejected", rejected.json()

    retired = await api.client.delete(f"/api/v1/products/{product_id}/plans/{bad.json()['id']}", headers=headers)
    assert retired.status_code == 200, retired.text
    assert retired.json()["plans"] == []
    good = await api.client.post(f"/api/v1/products/{product_id}/plans", json=plan_body(90_000), headers=headers)
    assert good.status_code == 201, good.text
    listed = await api.client.post(f"/api/v1/products/{product_id}/submit", headers=headers)
    assert listed.json()["status"] == "listed", listed.json()["verdict"]


async def test_a_sold_plan_stays_on_its_order_when_the_provider_retires_it(market: Market) -> None:
    order = await market.accepted_order()
    api, headers = market.api, market.provider.headers
    retired = await api.client.delete(f"/api/v1/products/{market.product_id}/plans/{market.plan_id}", headers=headers)
    assert retired.status_code == 200, retired.text
    assert retired.json()["version"] == 2  # a draft, made from the listed version
    assert retired.json()["plans"] == []  # which lost its copy of the plan
    assert retired.json()["listed_version"] == 1
    public = await api.client.get(f"/api/v1/products/{market.product_id}", headers=market.buyer.headers)
    assert [plan["id"] for plan in public.json()["plans"]] == [market.plan_id]  # still on sale as listed
    assert (await market.order(order["id"]))["plan_id"] == market.plan_id
    again = await api.client.delete(f"/api/v1/products/{market.product_id}/plans/{market.plan_id}", headers=headers)
    assert again.status_code == 404


async def test_only_the_provider_retires_its_plans(market: Market) -> None:
    response = await market.api.client.delete(
        f"/api/v1/products/{market.product_id}/plans/{market.plan_id}", headers=market.buyer.headers
    )
    assert response.status_code == 404
    other_id, other_plan = await listed_product(market.api, market.provider, market.provider_org["id"])
    crossed = await market.api.client.delete(
        f"/api/v1/products/{market.product_id}/plans/{other_plan}", headers=market.provider.headers
    )
    assert crossed.status_code == 404
    assert other_id != market.product_id


async def test_a_free_plan_with_a_price_is_refused_and_nothing_added(market: Market) -> None:
    api, headers = market.api, market.provider.headers
    product_id, _ = await draft(api, market)
    refused = await api.client.post(
        f"/api/v1/products/{product_id}/plans",
        json={"kind": "free", "price_minor": 500, "currency": "CNY"},
        headers=headers,
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == "price_minor"
    product = await api.client.get(f"/api/v1/products/{product_id}", headers=headers)
    assert product.json()["plans"] == []
