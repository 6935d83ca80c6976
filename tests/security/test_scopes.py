"""Issue 13, hole 1: an API key did what none of its scopes allows. The attacks that found it, replayed: each is
refused (403, the problem naming the scope the route needs) and changes nothing."""

from __future__ import annotations

import httpx
import pytest

from marketplace.accounts.models import Scope
from tests.delivery.conftest import Market, open_market
from tests.fixtures.api import Api
from tests.security.scopes import api_product, key_headers, missing_scope


@pytest.fixture
async def shop(api: Api) -> Market:
    return await open_market(api)


async def data_rows(shop: Market, licence_id: str, access_key: str) -> httpx.Response:
    return await shop.api.client.get(
        f"/api/v1/data/{licence_id}/rows", params={"limit": 1}, headers={"Authorization": f"Bearer {access_key}"}
    )


async def test_an_orders_read_key_cannot_replace_a_licence_access_key(shop: Market) -> None:
    order_id = await shop.paid_order(await api_product(shop), "api")
    delivered = await shop.delivery(order_id)  # the buyer's person takes delivery: the live access key
    assert delivered.status_code == 200, delivered.text
    licence_id, live_key = delivered.json()["licence_id"], delivered.json()["api_key"]
    orders_key = await key_headers(shop, shop.buyer_org, Scope.ORDERS_READ)

    minted = await shop.api.client.post(f"/api/v1/licences/{licence_id}/access-keys", headers=orders_key)

    assert missing_scope(minted) == "licences:write", minted.text
    assert (await data_rows(shop, licence_id, live_key)).status_code == 200


async def test_an_orders_read_key_cannot_take_delivery(shop: Market) -> None:
    order_id = await shop.paid_order(await api_product(shop), "api")
    orders_key = await key_headers(shop, shop.buyer_org, Scope.ORDERS_READ)

    taken = await shop.api.client.get(f"/api/v1/orders/{order_id}/delivery", headers=orders_key)

    assert missing_scope(taken) == "delivery:read", taken.text
    assert (await shop.order(order_id))["status"] == "paid"
    receipts = await shop.api.client.get(f"/api/v1/orders/{order_id}/receipts", headers=shop.buyer.headers)
    assert receipts.json()["items"] == []
    # the scope the route declares is what lets a key take delivery
    delivery_key = await key_headers(shop, shop.buyer_org, Scope.DELIVERY_READ)
    taken = await shop.api.client.get(f"/api/v1/orders/{order_id}/delivery", headers=delivery_key)
    assert taken.status_code == 200, taken.text
    assert (await shop.order(order_id))["status"] == "delivered"


async def test_a_balance_read_key_reads_the_balance_only(shop: Market) -> None:
    product = await api_product(shop)
    order_id = await shop.paid_order(product, "api")
    licence_id = (await shop.licence(order_id))["id"]
    buyer_id = shop.buyer_org["id"]
    balance_key = await key_headers(shop, shop.buyer_org, Scope.BALANCE_READ)
    refused = {
        f"/api/v1/products/{product.id}": "catalog:read",
        "/api/v1/products": "catalog:read",
        "/api/v1/licences": "licences:read",
        f"/api/v1/licences/{licence_id}": "licences:read",
        f"/api/v1/licences/{licence_id}/usage": "licences:read",
        f"/api/v1/organizations/{buyer_id}/payment-account": "payouts:read",
    }
    for path, scope in refused.items():
        response = await shop.api.client.get(path, headers=balance_key)
        assert missing_scope(response) == scope, (path, response.text)
    balance = await shop.api.client.get(f"/api/v1/organizations/{buyer_id}/balance", headers=balance_key)
    assert balance.status_code == 200, balance.text


async def test_a_delivery_read_key_cannot_list_licences(shop: Market) -> None:
    order_id = await shop.paid_order(await api_product(shop), "api")
    licence_id = (await shop.licence(order_id))["id"]
    delivery_key = await key_headers(shop, shop.buyer_org, Scope.DELIVERY_READ)
    for path in ("/api/v1/licences", f"/api/v1/licences/{licence_id}"):
        response = await shop.api.client.get(path, headers=delivery_key)
        assert missing_scope(response) == "licences:read", (path, response.text)
    licences_key = await key_headers(shop, shop.buyer_org, Scope.LICENCES_READ)
    listed = await shop.api.client.get("/api/v1/licences", headers=licences_key)
    assert [item["id"] for item in listed.json()["items"]] == [licence_id]


async def test_a_missing_scope_is_refused_before_looking_for_the_object(shop: Market) -> None:
    """No credential is 401 first; a key without the scope is refused whether or not the object exists (so
    the refusal tells nothing about it); with the scope, another organisation's object is not found."""
    orders_key = await key_headers(shop, shop.buyer_org, Scope.ORDERS_READ)
    provider_org = shop.provider_org["id"]
    path = f"/api/v1/organizations/{provider_org}/balance"
    assert (await shop.api.client.get(path)).status_code == 401
    assert missing_scope(await shop.api.client.get(path, headers=orders_key)) == "balance:read"
    balance_key = await key_headers(shop, shop.buyer_org, Scope.BALANCE_READ)
    assert (await shop.api.client.get(path, headers=balance_key)).status_code == 404
