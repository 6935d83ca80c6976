"""Hole 3, dispute and keep the data: a buyer paid, disputed at once, and still took the data (a link, the
download, an access key, data calls) while the order was disputed. A disputed order delivers nothing until
it is resolved: released, delivery resumes; refunded, the licence is revoked."""

from __future__ import annotations

import httpx
import pytest

from tests.delivery.conftest import DISTRICT_DATASET, FIELDS, Market, open_market
from tests.delivery.test_data_api import access_key, rows
from tests.fixtures.api import Api


@pytest.fixture
async def shop(api: Api) -> Market:
    return await open_market(api)


async def dispute(shop: Market, order_id: str) -> None:
    disputed = await shop.api.client.post(
        f"/api/v1/orders/{order_id}/dispute", json={"reason": "not what was listed"}, headers=shop.buyer.headers
    )
    assert disputed.status_code == 200, disputed.text


async def resolve(shop: Market, order_id: str, outcome: str) -> None:
    resolved = await shop.api.client.post(
        f"/api/v1/admin/orders/{order_id}/resolve-dispute",
        json={"outcome": outcome, "reason": "decided on the evidence"},
        headers=shop.admin.headers,
    )
    assert resolved.status_code == 200, resolved.text


def refused_as_disputed(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["type"].endswith(":delivery-refused")
    assert body["order_status"] == "disputed"


async def test_a_disputed_file_order_gives_no_link_and_no_download_until_released(shop: Market) -> None:
    product = await shop.product()
    order_id = await shop.paid_order(product)
    link = (await shop.delivery(order_id)).json()["download_url"]  # taken before the dispute
    await dispute(shop, order_id)
    refused_as_disputed(await shop.delivery(order_id))
    refused_as_disputed(await shop.api.client.get(link))
    receipts = await shop.api.client.get(f"/api/v1/orders/{order_id}/receipts", headers=shop.buyer.headers)
    assert receipts.json()["total"] == 0  # nothing was downloaded

    await resolve(shop, order_id, "release")
    assert (await shop.api.client.get(link)).status_code == 200
    assert (await shop.licence(order_id))["status"] == "active"


async def test_a_disputed_api_order_gives_no_key_and_no_data_call_and_a_refund_revokes_it(shop: Market) -> None:
    product = await shop.product(delivery_modes=["api"], fields=FIELDS, dataset=DISTRICT_DATASET)
    order_id = await shop.paid_order(product, "api")
    key, body = await access_key(shop, order_id)
    licence_id = body["licence_id"]
    await dispute(shop, order_id)
    refused_as_disputed(await rows(shop, licence_id, key, limit=1))
    rotated = await shop.api.client.post(f"/api/v1/licences/{licence_id}/access-keys", headers=shop.buyer.headers)
    refused_as_disputed(rotated)
    usage = await shop.api.client.get(f"/api/v1/licences/{licence_id}/usage", headers=shop.buyer.headers)
    assert usage.json()["calls"] == 0  # the refused call was not metered

    await resolve(shop, order_id, "refund")
    assert (await shop.licence(order_id))["status"] == "revoked"
    refused = await rows(shop, licence_id, key, limit=1)
    assert refused.status_code in (401, 403), refused.text
    assert (await shop.delivery(order_id)).status_code == 403
