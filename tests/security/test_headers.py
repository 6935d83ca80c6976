"""Hole 15 (headers): answers that carry a secret (an access token, an API key or access key shown once, a
signed download link) are never stored by a cache; every answer, errors included, tells browsers not to sniff
its content type; the CSV export names its charset once."""

from __future__ import annotations

import httpx

from tests.delivery.conftest import DISTRICT_DATASET, FIELDS, open_market
from tests.fixtures.api import PASSWORD, Api
from tests.orders.conftest import Market


def nosniff(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff", response.headers


def no_store(response: httpx.Response) -> None:
    assert response.status_code in (200, 201), response.text
    assert "no-store" in response.headers["cache-control"], response.headers
    nosniff(response)


async def test_every_answer_and_every_problem_says_nosniff(api: Api) -> None:
    for response in [
        await api.client.get("/health"),
        await api.client.get("/api/v1/rules"),
        await api.client.get("/api/v1/me"),  # 401 problem
        await api.client.get("/api/v1/nowhere"),  # 404 problem
        await api.client.post("/api/v1/auth/token", content=b"{", headers={"content-type": "application/json"}),
    ]:
        nosniff(response)


async def test_secrets_are_never_stored_by_a_cache(api: Api) -> None:
    person = await api.person("Keyholder")
    no_store(await api.client.post("/api/v1/auth/token", json={"email": person.email, "password": PASSWORD}))
    admin = await api.admin()
    organization = await api.admitted_organization(person, admin, kind="buyer", dsmm_level=3)
    key = await api.client.post(
        "/api/v1/api-keys",
        json={"organization_id": organization["id"], "name": "ci", "scopes": ["orders:read"]},
        headers=person.headers,
    )
    no_store(key)


async def test_delivery_answers_carrying_a_link_or_a_key_are_never_stored(api: Api) -> None:
    market = await open_market(api)
    file_product = await market.product()
    no_store(await market.delivery(await market.paid_order(file_product)))
    api_product = await market.product(delivery_modes=["api"], fields=FIELDS, dataset=DISTRICT_DATASET)
    order_id = await market.paid_order(api_product, "api")
    delivered = await market.delivery(order_id)
    no_store(delivered)
    rotated = await api.client.post(
        f"/api/v1/licences/{delivered.json()['licence_id']}/access-keys", headers=market.buyer.headers
    )
    no_store(rotated)


async def test_the_csv_export_names_its_charset_once(market: Market) -> None:
    response = await market.api.client.get(
        "/api/v1/admin/trades/export", params={"format": "csv"}, headers=market.admin.headers
    )
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
