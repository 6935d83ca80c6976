"""What the scope tests share: the delivery tests' market (an admitted provider and buyer), a product delivered
through the data API, API keys holding given scopes, and the problem a missing scope answers."""

from __future__ import annotations

from typing import Any

import httpx

from marketplace.accounts.models import Scope
from tests.delivery.conftest import DISTRICT_DATASET, FIELDS, Market, Product

FORBIDDEN = "urn:marketplace:problem:forbidden"


async def api_product(market: Market) -> Product:
    """A listed product delivered through the data API, its dataset hosted."""
    product = await market.product(delivery_modes=["api"], fields=FIELDS, dataset=DISTRICT_DATASET)
    return product


async def key_headers(market: Market, organization: dict[str, Any], *scopes: Scope) -> dict[str, str]:
    """The `Authorization` header of a new API key of `organization` holding `scopes`, made by its owner."""
    owner = market.provider if organization is market.provider_org else market.buyer
    response = await market.api.client.post(
        "/api/v1/api-keys",
        json={"organization_id": organization["id"], "name": "integration", "scopes": [s.value for s in scopes]},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['key']}"}


def missing_scope(response: httpx.Response) -> str | None:
    """The scope a 403 problem says the API key lacks, or None for any other answer."""
    if response.status_code != 403 or not response.headers["content-type"].startswith("application/problem+json"):
        return None
    problem = response.json()
    detail = str(problem.get("detail", ""))
    if problem["type"] != FORBIDDEN or not detail.startswith("this API key lacks the "):
        return None
    return detail.removeprefix("this API key lacks the ").removesuffix(" scope")
