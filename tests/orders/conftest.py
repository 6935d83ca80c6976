"""A market to trade in: an admitted provider with a listed product and its plan, an admitted buyer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from marketplace.demo.factories import plan_body, product_body
from tests.catalog.test_products import CLEAN_SAMPLE, upload
from tests.fixtures.api import DATASET, Api, Person

PRICE_MINOR = 1_200_000


@dataclass
class Market:
    api: Api
    admin: Person
    provider: Person
    provider_org: dict[str, Any]
    buyer: Person
    buyer_org: dict[str, Any]
    product_id: str
    plan_id: str

    def trade(self, **changes: Any) -> dict[str, Any]:
        return {
            "product_id": self.product_id,
            "plan_id": self.plan_id,
            "buyer_organization_id": self.buyer_org["id"],
            "scenario": "traffic_planning",
            "delivery_mode": "file",
            "quantity": 1,
            "accept_licence_terms": True,
            **changes,
        }

    async def place(self, *, key: str | None = None, as_: Person | None = None, **changes: Any) -> httpx.Response:
        headers = dict((as_ or self.buyer).headers)
        if key is not None:
            headers["Idempotency-Key"] = key
        return await self.api.client.post("/api/v1/orders", json=self.trade(**changes), headers=headers)

    async def accepted_order(self, **changes: Any) -> dict[str, Any]:
        response = await self.place(**changes)
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "accepted", response.json()["verdict"]
        return dict(response.json())

    async def act(self, order_id: str, action: str, who: Person, json: Any = None) -> httpx.Response:
        return await self.api.client.post(f"/api/v1/orders/{order_id}/{action}", json=json, headers=who.headers)

    async def host_dataset(self, content: bytes = DATASET) -> dict[str, Any]:
        """The provider uploads the product's full dataset (the same file again changes nothing)."""
        return await self.api.host_dataset(self.provider, self.product_id, content)

    async def take_delivery(self, order_id: str) -> httpx.Response:
        """The delivery act of a file order: the dataset hosted, a signed link taken, the file downloaded;
        the first download delivers a paid order."""
        dataset = await self.host_dataset()
        delivery = await self.api.client.get(f"/api/v1/orders/{order_id}/delivery", headers=self.buyer.headers)
        assert delivery.status_code == 200, delivery.text
        download = await self.api.client.get(delivery.json()["download_url"])
        assert download.status_code == 200, download.text
        assert download.headers["x-content-sha256"] == dataset["sha256"]
        return download

    async def order(self, order_id: str, who: Person | None = None) -> dict[str, Any]:
        response = await self.api.client.get(f"/api/v1/orders/{order_id}", headers=(who or self.buyer).headers)
        assert response.status_code == 200, response.text
        return dict(response.json())


async def submitted_product(
    api: Api,
    owner: Person,
    organization_id: str,
    *,
    plan: dict[str, Any] | None = None,
    dataset: bytes | None = DATASET,
    **changes: Any,
) -> tuple[str, str, dict[str, Any]]:
    """A product described with `changes`, its plan (default: one-time at PRICE_MINOR), its sample and its full
    dataset (None: none hosted), submitted to the listing stage; returns (product id, plan id, the answer)."""
    created = await api.client.post(
        "/api/v1/products", json=product_body(organization_id, **changes), headers=owner.headers
    )
    assert created.status_code == 201, created.text
    product_id = created.json()["id"]
    made = await api.client.post(
        f"/api/v1/products/{product_id}/plans", json=plan or plan_body(PRICE_MINOR), headers=owner.headers
    )
    assert made.status_code == 201, made.text
    sample = await upload(api, owner, product_id, "sample.csv", CLEAN_SAMPLE, "text/csv")
    assert sample.status_code == 201, sample.text
    if dataset is not None:
        await api.host_dataset(owner, product_id, dataset)
    submitted = await api.client.post(f"/api/v1/products/{product_id}/submit", headers=owner.headers)
    assert submitted.status_code == 200, submitted.text
    return product_id, made.json()["id"], dict(submitted.json())


async def listed_product(api: Api, owner: Person, organization_id: str, **changes: Any) -> tuple[str, str]:
    """A product through the listing stage, with a one-time plan; returns (product id, plan id)."""
    product_id, plan_id, submitted = await submitted_product(api, owner, organization_id, **changes)
    assert submitted["status"] == "listed", submitted["verdict"]
    return product_id, plan_id


@pytest.fixture
async def market(api: Api) -> Market:
    admin = await api.admin()
    provider = await api.person("Provider")
    provider_org = await api.admitted_organization(provider, admin, kind="provider", dsmm_level=3)
    product_id, plan_id = await listed_product(api, provider, provider_org["id"])
    buyer = await api.person("Buyer")
    buyer_org = await api.admitted_organization(buyer, admin, kind="buyer", dsmm_level=3)
    return Market(api, admin, provider, provider_org, buyer, buyer_org, product_id, plan_id)
