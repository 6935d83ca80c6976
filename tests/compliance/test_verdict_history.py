"""A subject's verdicts can be read again after the answer that carried them: a product's listing
verdicts by its provider, an organisation's admission verdicts by its members; to anyone else the
subject does not exist (404)."""

from __future__ import annotations

from typing import Any

from tests.fixtures.api import Api
from tests.orders.conftest import submitted_product


def failed_checks(verdict: dict[str, Any]) -> set[str]:
    return {finding["check"] for finding in verdict["findings"] if finding["outcome"] == "fail"}


async def test_a_rejected_submission_is_read_again_beside_the_one_that_listed(api: Api) -> None:
    admin = await api.admin()
    provider = await api.person("Provider")
    provider_org = await api.admitted_organization(provider, admin, kind="provider", dsmm_level=3)
    product_id, _, rejected = await submitted_product(api, provider, provider_org["id"], dataset=None)
    assert rejected["status"] == "rejected", rejected
    await api.host_dataset(provider, product_id)
    listed = await api.client.post(f"/api/v1/products/{product_id}/submit", headers=provider.headers)
    assert listed.json()["status"] == "listed", listed.text

    history = await api.client.get(f"/api/v1/products/{product_id}/verdicts", headers=provider.headers)

    assert history.status_code == 200, history.text
    newest, oldest = history.json()
    assert newest == listed.json()["verdict"]
    assert oldest == rejected["verdict"]  # what the rejected submission was told, every finding included
    assert "R1.dataset-hosted" in failed_checks(oldest)
    assert {newest["stage"], oldest["stage"]} == {"listing"}


async def test_another_organisation_does_not_see_a_products_verdicts(api: Api) -> None:
    admin = await api.admin()
    provider = await api.person("Provider")
    provider_org = await api.admitted_organization(provider, admin, kind="provider", dsmm_level=3)
    product_id, _, _ = await submitted_product(api, provider, provider_org["id"])
    buyer = await api.person("Buyer")
    await api.admitted_organization(buyer, admin, kind="buyer")

    for outsider in (buyer, admin):
        seen = await api.client.get(f"/api/v1/products/{product_id}/verdicts", headers=outsider.headers)
        assert seen.status_code == 404, seen.text


async def test_an_organisations_admission_verdicts_are_its_members(api: Api) -> None:
    admin = await api.admin()
    owner = await api.person("Owner")
    organization = await api.admitted_organization(owner, admin, kind="buyer")
    outsider = await api.person("Outsider")

    history = await api.client.get(f"/api/v1/organizations/{organization['id']}/verdicts", headers=owner.headers)
    hidden = await api.client.get(f"/api/v1/organizations/{organization['id']}/verdicts", headers=outsider.headers)

    assert history.status_code == 200, history.text
    assert [verdict["stage"] for verdict in history.json()] == ["admission"]
    assert history.json()[0]["decision"] in {"accepted", "review"}
    assert hidden.status_code == 404
