"""Visitors browse the listed catalog without an account: search and product detail answer without a
credential, showing only what is listed (a draft is 404, as to any other stranger); a credential that is sent
is still verified; every other route still wants one."""

from __future__ import annotations

from litestar import Litestar

from marketplace.demo.factories import product_body
from tests.fixtures.api import Api
from tests.orders.conftest import PRICE_MINOR, listed_product


async def test_a_visitor_searches_and_reads_listed_products_only(api: Api) -> None:
    admin = await api.admin()
    owner = await api.person("Provider")
    organization = await api.admitted_organization(owner, admin, kind="provider", dsmm_level=3)
    product_id, plan_id = await listed_product(api, owner, organization["id"], delivery_modes=["file", "api"])
    draft = await api.client.post("/api/v1/products", json=product_body(organization["id"]), headers=owner.headers)
    assert draft.status_code == 201

    found = await api.client.get("/api/v1/products", params={"q": "traffic"})
    assert found.status_code == 200, found.text
    assert [item["id"] for item in found.json()["items"]] == [product_id]

    detail = await api.client.get(f"/api/v1/products/{product_id}")
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert [(plan["id"], plan["price_minor"]) for plan in body["plans"]] == [(plan_id, PRICE_MINOR)]
    assert (body["delivery_modes"], body["data_hosted"], body["status"]) == (["file", "api"], True, "listed")

    assert (await api.client.get(f"/api/v1/products/{draft.json()['id']}")).status_code == 404
    owned = await api.client.get(f"/api/v1/products/{draft.json()['id']}", headers=owner.headers)
    assert (owned.status_code, owned.json()["data_hosted"]) == (200, False)


async def test_a_credential_sent_is_verified_and_other_routes_want_one(api: Api) -> None:
    bad = {"Authorization": "Bearer not-a-token"}
    assert (await api.client.get("/api/v1/products", headers=bad)).status_code == 401
    assert (await api.client.get("/api/v1/products", headers={"Authorization": "Basic eDp5"})).status_code == 401
    assert (await api.client.get("/api/v1/orders")).status_code == 401
    assert (await api.client.post("/api/v1/products", json={})).status_code == 401
    assert (await api.client.get("/api/v1/me")).status_code == 401


def test_the_document_says_which_routes_visitors_may_call(app: Litestar) -> None:
    paths = app.openapi_schema.to_schema()["paths"]
    assert paths["/api/v1/products"]["get"]["security"] == [{}, {"BearerAuth": ["catalog:read"]}]
    assert paths["/api/v1/products/{product_id}"]["get"]["security"] == [{}, {"BearerAuth": ["catalog:read"]}]
    assert paths["/api/v1/products"]["post"]["security"] == [{"BearerAuth": ["catalog:write"]}]
