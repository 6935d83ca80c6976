"""Hole 6, `null` for a required field in a PATCH: a product's or an organisation's field set to null made the
service answer 500. It is a 422 naming the field, and nothing is saved."""

from __future__ import annotations

import pytest

from marketplace.accounts.service import REQUIRED_FIELDS as ORGANIZATION_FIELDS
from marketplace.catalog.service import REQUIRED_FIELDS as PRODUCT_FIELDS
from marketplace.demo.factories import product_body
from tests.fixtures.api import Api


@pytest.mark.parametrize("field", sorted(PRODUCT_FIELDS))
async def test_a_required_product_field_set_to_null_is_refused_and_nothing_changes(api: Api, field: str) -> None:
    admin, owner = await api.admin(), await api.person("Provider")
    organization = await api.admitted_organization(owner, admin, kind="provider", dsmm_level=3)
    created = await api.client.post("/api/v1/products", json=product_body(organization["id"]), headers=owner.headers)
    assert created.status_code == 201, created.text
    product = created.json()
    refused = await api.client.patch(f"/api/v1/products/{product['id']}", json={field: None}, headers=owner.headers)
    assert refused.status_code == 422, refused.text
    assert refused.json()["type"].endswith(":fields-required")
    assert refused.json()["errors"] == [{"key": field, "message": "cannot be null", "source": "body"}]
    after = await api.client.get(f"/api/v1/products/{product['id']}", headers=owner.headers)
    assert after.json() == product


@pytest.mark.parametrize("field", sorted(ORGANIZATION_FIELDS & {"name", "jurisdiction", "dsmm_level"}))
async def test_a_required_organisation_field_set_to_null_is_refused(api: Api, field: str) -> None:
    owner = await api.person("Owner")
    organization = await api.organization(owner, "buyer")
    refused = await api.client.patch(
        f"/api/v1/organizations/{organization['id']}", json={field: None}, headers=owner.headers
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["key"] == field
    after = await api.client.get(f"/api/v1/organizations/{organization['id']}", headers=owner.headers)
    assert after.json() == organization


def test_every_organisation_qualification_that_cannot_be_null_is_known() -> None:
    assert {"name", "jurisdiction", "dsmm_level", "max_data_grade", "penalties_last_3y"} <= ORGANIZATION_FIELDS
