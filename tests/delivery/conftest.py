"""A market to take delivery in: an admitted provider and buyer, products listed for each delivery mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from marketplace.demo.factories import plan_body, product_body
from tests.catalog.test_products import CLEAN_SAMPLE, upload
from tests.fixtures.api import Api, Person

PRICE_MINOR = 50_000
# A dataset for aggregates: district (groupable), kind (filterable), amount (measurable), person (neither).
DISTRICT_ROWS = [("520102", "bus", 10 + i, f"P{i:03d}") for i in range(12)]
DISTRICT_ROWS += [("520103", "taxi" if i % 2 else "bus", 100 + i, f"Q{i:03d}") for i in range(9)]
DISTRICT_ROWS += [("520111", "bus", 1000 + 2 * i, f"R{i:03d}") for i in range(10)]
DISTRICT_DATASET = (
    "district,kind,amount,person\n" + "".join(f"{d},{k},{a},{p}\n" for d, k, a, p in DISTRICT_ROWS)
).encode()
# Declared columns: the codes are text (a leading zero must survive), the amount an integer.
FIELDS = [
    {"name": "district", "type": "string"},
    {"name": "kind", "type": "string"},
    {"name": "amount", "type": "integer"},
    {"name": "person", "type": "string"},
]
COMPUTATION = {
    "group_by": ["district", "kind"],
    "filter": ["kind", "district"],
    "measure": ["amount"],
    # Privacy computing's differential privacy: an answer spends epsilon 1 of a licence's 10; amounts are
    # clamped into [0, 2000] before they are summed.
    "epsilon_per_query": 1.0,
    "epsilon_budget": 10.0,
    "bounds": {"amount": {"lower": 0, "upper": 2000}},
}


@dataclass
class Product:
    id: str
    plan_id: str


@dataclass
class Market:
    api: Api
    admin: Person
    provider: Person
    provider_org: dict[str, Any]
    buyer: Person
    buyer_org: dict[str, Any]

    async def product(
        self, plan: dict[str, Any] | None = None, dataset: bytes = CLEAN_SAMPLE, **changes: Any
    ) -> Product:
        """A listed product with one plan (default: one-time at PRICE_MINOR) and its full dataset hosted."""
        product = await self.draft(plan, **changes)
        await self.api.host_dataset(self.provider, product.id, dataset)
        await self.submit(product)
        return product

    async def draft(self, plan: dict[str, Any] | None = None, **changes: Any) -> Product:
        """A product described, priced (default: one-time at PRICE_MINOR) and sampled; no dataset hosted yet."""
        headers = self.provider.headers
        created = await self.api.client.post(
            "/api/v1/products", json=product_body(self.provider_org["id"], **changes), headers=headers
        )
        assert created.status_code == 201, created.text
        product_id = created.json()["id"]
        made = await self.api.client.post(
            f"/api/v1/products/{product_id}/plans", json=plan or plan_body(PRICE_MINOR), headers=headers
        )
        assert made.status_code == 201, made.text
        sample = await upload(self.api, self.provider, product_id, "sample.csv", CLEAN_SAMPLE, "text/csv")
        assert sample.status_code == 201, sample.text
        return Product(product_id, made.json()["id"])

    async def submit(self, product: Product) -> None:
        """The draft through the listing stage, which lists it."""
        submitted = await self.api.client.post(f"/api/v1/products/{product.id}/submit", headers=self.provider.headers)
        assert submitted.json()["status"] == "listed", submitted.json()["verdict"]

    async def host(self, product: Product, content: bytes = CLEAN_SAMPLE) -> dict[str, Any]:
        """The listed version's dataset, uploaded again (the same file changes nothing)."""
        return await self.api.host_dataset(self.provider, product.id, content)

    async def paid_order(self, product: Product, mode: str = "file") -> str:
        placed = await self.api.client.post(
            "/api/v1/orders",
            json={
                "product_id": product.id,
                "plan_id": product.plan_id,
                "buyer_organization_id": self.buyer_org["id"],
                "scenario": "traffic_planning",
                "delivery_mode": mode,
                "quantity": 1,
                "accept_licence_terms": True,
            },
            headers=self.buyer.headers,
        )
        assert placed.status_code == 201, placed.text
        order_id = str(placed.json()["id"])
        paid = await self.api.client.post(f"/api/v1/orders/{order_id}/pay", headers=self.buyer.headers)
        assert paid.status_code == 200, paid.text
        return order_id

    async def delivery(self, order_id: str, who: Person | None = None) -> httpx.Response:
        return await self.api.client.get(f"/api/v1/orders/{order_id}/delivery", headers=(who or self.buyer).headers)

    async def order(self, order_id: str) -> dict[str, Any]:
        response = await self.api.client.get(f"/api/v1/orders/{order_id}", headers=self.buyer.headers)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def licence(self, order_id: str) -> dict[str, Any]:
        response = await self.api.client.get("/api/v1/licences", headers=self.buyer.headers)
        assert response.status_code == 200, response.text
        return next(item for item in response.json()["items"] if item["order_id"] == order_id)


@pytest.fixture
async def market(api: Api) -> Market:
    return await open_market(api)


async def open_market(api: Api) -> Market:
    """An admitted provider and buyer, and an administrator, ready to list and trade."""
    admin = await api.admin()
    provider = await api.person("Provider")
    provider_org = await api.admitted_organization(provider, admin, kind="provider", dsmm_level=3)
    buyer = await api.person("Buyer")
    buyer_org = await api.admitted_organization(buyer, admin, kind="buyer", dsmm_level=3)
    return Market(api, admin, provider, provider_org, buyer, buyer_org)
