"""A provider who leaves a declaration out sees one blocking finding for it, not one per check that needed it:
the checks that depend on it are listed as not applicable, following from it (`follows_from`)."""

from __future__ import annotations

from collections import Counter

from marketplace.demo.factories import plan_body, product_body
from tests.catalog.test_products import CLEAN_SAMPLE, create, upload
from tests.fixtures.api import Api


async def test_a_missing_cost_and_provenance_are_one_failure_each(api: Api) -> None:
    admin = await api.admin()
    owner = await api.person("Provider")
    organization = await api.admitted_organization(owner, admin, kind="provider", dsmm_level=3)
    product = await create(api, owner, product_body(organization["id"], cost=None, provenance=None))
    await api.client.post(f"/api/v1/products/{product['id']}/plans", json=plan_body(1_200_000), headers=owner.headers)
    assert (await upload(api, owner, product["id"], "s.csv", CLEAN_SAMPLE, "text/csv")).status_code == 201
    await api.host_dataset(owner, product["id"])

    preview = await api.client.post(f"/api/v1/products/{product['id']}/preview", headers=owner.headers)
    assert preview.status_code == 200, preview.text
    findings = preview.json()["findings"]
    failing = Counter(f["rule_id"] for f in findings if f["outcome"] == "fail")
    assert (failing["R4"], failing["S9"]) == (1, 1)
    following = {f["check"]: f["follows_from"] for f in findings if f["follows_from"]}
    assert following == {
        "R4.non-negative": "R4.cost-declared",
        "R4.components-sum": "R4.cost-declared",
        "R4.currency": "R4.cost-declared",
        "R4.plan-currency": "R4.cost-declared",
        "R4.method": "R4.cost-declared",
        "S9.activities": "S9.source-entity",
        "S9.activity-times": "S9.source-entity",
    }
    assert all(f["outcome"] == "not_applicable" for f in findings if f["follows_from"])

    submitted = await api.client.post(f"/api/v1/products/{product['id']}/submit", headers=owner.headers)
    assert submitted.json()["status"] == "rejected"
    verdicts = await api.client.get(f"/api/v1/products/{product['id']}/verdicts", headers=owner.headers)
    [stored] = verdicts.json()
    assert {f["check"]: f["follows_from"] for f in stored["findings"] if f["follows_from"]} == following
