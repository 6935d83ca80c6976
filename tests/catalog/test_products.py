"""Products through the API: drafts, versions, plans, the listing stage and who may see what."""

from __future__ import annotations

from typing import Any

import pytest

from marketplace.demo.factories import ROAD_TRAFFIC, plan_body, product_body
from tests.fixtures.api import Api, Person


@pytest.fixture
async def provider(api: Api) -> tuple[Person, dict[str, Any]]:
    admin = await api.admin()
    owner = await api.person("Provider")
    organization = await api.admitted_organization(owner, admin, kind="provider", dsmm_level=3)
    return owner, organization


async def create(api: Api, owner: Person, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.client.post("/api/v1/products", json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def submit(api: Api, owner: Person, product_id: str) -> dict[str, Any]:
    response = await api.client.post(f"/api/v1/products/{product_id}/submit", headers=owner.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def failing(result: dict[str, Any]) -> dict[str, str]:
    return {f["check"]: f["outcome"] for f in result["verdict"]["findings"] if f["outcome"] in ("fail", "review")}


async def test_a_product_starts_as_a_draft_with_its_plans(api: Api, provider: tuple[Person, dict[str, Any]]) -> None:
    owner, organization = provider
    body = product_body(organization["id"])
    product = await create(api, owner, body)
    assert (product["status"], product["version"], product["version_status"]) == ("draft", 1, "draft")
    plan = await api.client.post(
        f"/api/v1/products/{product['id']}/plans", json=plan_body(1_200_000), headers=owner.headers
    )
    assert plan.status_code == 201, plan.text
    read = await api.client.get(f"/api/v1/products/{product['id']}", headers=owner.headers)
    assert [p["id"] for p in read.json()["plans"]] == [plan.json()["id"]]
    assert read.json()["details"]["cost"]["total_minor"] == body["cost"]["total_minor"]


async def test_core_grade_product_is_rejected_by_r3(api: Api, provider: tuple[Person, dict[str, Any]]) -> None:
    owner, organization = provider
    product = await create(api, owner, product_body(organization["id"], grade="core"))
    result = await submit(api, owner, product["id"])
    assert result["status"] == "rejected"
    assert failing(result)["R3.core-data"] == "fail"


async def test_missing_cost_declaration_fails_r4(api: Api, provider: tuple[Person, dict[str, Any]]) -> None:
    owner, organization = provider
    product = await create(api, owner, product_body(organization["id"], cost=None))
    result = await submit(api, owner, product["id"])
    assert result["status"] == "rejected"
    assert failing(result)["R4.cost-declared"] == "fail"


async def test_invalid_industry_code_fails_s7(api: Api, provider: tuple[Person, dict[str, Any]]) -> None:
    owner, organization = provider
    product = await create(api, owner, product_body(organization["id"], industry_code="9999"))
    result = await submit(api, owner, product["id"])
    assert result["status"] == "rejected"
    finding = next(f for f in result["verdict"]["findings"] if f["check"] == "S7.industry-code")
    assert finding["outcome"] == "fail"
    assert finding["evidence"]["declared"] == "9999"


async def test_a_rejected_draft_can_be_fixed_and_submitted_again(
    api: Api, provider: tuple[Person, dict[str, Any]]
) -> None:
    owner, organization = provider
    product = await create(api, owner, product_body(organization["id"], industry_code="9999"))
    assert (await submit(api, owner, product["id"]))["status"] == "rejected"
    fixed = await api.client.patch(
        f"/api/v1/products/{product['id']}", json={"industry_code": "5431"}, headers=owner.headers
    )
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["version"] == 1
    again = await submit(api, owner, product["id"])
    assert "S7.industry-code" not in failing(again)


async def test_others_cannot_see_or_change_a_draft_and_buyers_cannot_create(
    api: Api, provider: tuple[Person, dict[str, Any]]
) -> None:
    owner, organization = provider
    product = await create(api, owner, product_body(organization["id"]))
    admin = await api.admin()
    rival = await api.person("Rival")
    await api.admitted_organization(rival, admin, kind="provider", dsmm_level=3)
    for method, path, body in [
        ("GET", f"/api/v1/products/{product['id']}", None),
        ("PATCH", f"/api/v1/products/{product['id']}", {"title": "Mine now"}),
        ("POST", f"/api/v1/products/{product['id']}/plans", {"kind": "free", "price_minor": 0, "currency": "CNY"}),
        ("POST", f"/api/v1/products/{product['id']}/submit", None),
    ]:
        response = await api.client.request(method, path, json=body, headers=rival.headers)
        assert response.status_code == 404, (method, path, response.text)
    # a rival cannot create a product in someone else's organisation either
    stolen = await api.client.post("/api/v1/products", json=product_body(organization["id"]), headers=rival.headers)
    assert stolen.status_code == 404

    buyer = await api.person("Buyer")
    buyer_org = await api.admitted_organization(buyer, admin, kind="buyer")
    response = await api.client.post("/api/v1/products", json=product_body(buyer_org["id"]), headers=buyer.headers)
    assert response.status_code == 403
    assert response.json()["detail"] == "only provider organisations list data products"
    unchanged = await api.client.get(f"/api/v1/products/{product['id']}", headers=owner.headers)
    assert unchanged.json()["title"] == product["title"]


async def test_every_catalog_change_is_audited(api: Api, provider: tuple[Person, dict[str, Any]]) -> None:
    owner, organization = provider
    product = await create(api, owner, product_body(organization["id"], grade="core"))
    await submit(api, owner, product["id"])
    admin = await api.admin()
    entries = await api.client.get("/api/v1/admin/audit", params={"object_id": product["id"]}, headers=admin.headers)
    actions = [e["action"] for e in reversed(entries.json()["items"])]
    assert actions == ["product.created", "verdict.recorded", "product.status_changed"]


async def upload(api: Api, owner: Person, product_id: str, name: str, content: bytes, media_type: str):  # type: ignore[no-untyped-def]
    return await api.client.post(
        f"/api/v1/products/{product_id}/samples", files={"file": (name, content, media_type)}, headers=owner.headers
    )


CLEAN_SAMPLE = ROAD_TRAFFIC.sample.encode()


async def test_a_complete_product_with_a_clean_sample_is_listed(
    api: Api, provider: tuple[Person, dict[str, Any]]
) -> None:
    owner, organization = provider
    product = await create(api, owner, product_body(organization["id"]))
    await api.client.post(f"/api/v1/products/{product['id']}/plans", json=plan_body(1_200_000), headers=owner.headers)
    response = await upload(api, owner, product["id"], "sample.csv", CLEAN_SAMPLE, "text/csv")
    assert response.status_code == 201, response.text
    assert (response.json()["rows"], len(response.json()["sha256"])) == (3, 64)
    await api.host_dataset(owner, product["id"])
    result = await submit(api, owner, product["id"])
    assert result["status"] == "listed", failing(result)
    # listed: now visible to others, and an edit makes version 2 while version 1 stays listed
    buyer = await api.person("Browser")
    seen = await api.client.get(f"/api/v1/products/{product['id']}", headers=buyer.headers)
    assert (seen.status_code, seen.json()["version"]) == (200, 1)
    edited = await api.client.patch(
        f"/api/v1/products/{product['id']}", json={"title": "New title"}, headers=owner.headers
    )
    assert (edited.json()["version"], edited.json()["version_status"], edited.json()["status"]) == (
        2,
        "draft",
        "listed",
    )
    still = await api.client.get(f"/api/v1/products/{product['id']}", headers=buyer.headers)
    assert (still.json()["version"], still.json()["title"]) == (1, product["title"])


async def test_a_sample_holding_a_resident_id_number_is_rejected_by_s4(
    api: Api, provider: tuple[Person, dict[str, Any]]
) -> None:
    owner, organization = provider
    product = await create(api, owner, product_body(organization["id"]))
    leaky = CLEAN_SAMPLE + b"GY-0004,2026-10-01T08:05:00+08:00,11010519491231002X,7\n"
    response = await upload(api, owner, product["id"], "sample.csv", leaky, "text/csv")
    assert response.status_code == 201, response.text
    result = await submit(api, owner, product["id"])
    assert result["status"] == "rejected"
    finding = next(f for f in result["verdict"]["findings"] if f["check"] == "S4.sample-scan")
    assert finding["outcome"] == "fail"
    assert "11010519491231002X" not in str(finding["evidence"])  # masked, never the raw number


async def test_bad_or_oversized_samples_are_refused_and_nothing_is_stored(
    api: Api, provider: tuple[Person, dict[str, Any]]
) -> None:
    owner, organization = provider
    product = await create(api, owner, product_body(organization["id"]))
    sample_dir = api.app.state.runtime.settings.sample_dir
    before = sorted(sample_dir.rglob("*")) if sample_dir.exists() else []
    ragged = b"a,b\n1,2\n3\n"
    assert (await upload(api, owner, product["id"], "s.csv", ragged, "text/csv")).status_code == 422
    assert (await upload(api, owner, product["id"], "s.xlsx", b"PK", "application/vnd.ms-excel")).status_code == 415
    huge = b"a\n" + b"x\n" * (api.app.state.runtime.settings.max_sample_bytes // 2 + 1)
    assert (await upload(api, owner, product["id"], "s.csv", huge, "text/csv")).status_code == 413
    after = sorted(p for p in sample_dir.rglob("*") if p.is_file()) if sample_dir.exists() else []
    assert [p for p in after if p.is_file()] == [p for p in before if p.is_file()]
    read = await api.client.get(f"/api/v1/products/{product['id']}", headers=owner.headers)
    assert read.json()["sample"] is None
