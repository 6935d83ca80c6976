"""Admission: the rulebook's admission stage decides first; administrators decide what it holds."""

from __future__ import annotations

from typing import Any

import pytest

from marketplace.demo.factories import valid_uscc
from tests.fixtures.api import Api, Person


async def apply(api: Api, owner: Person, **fields: Any) -> dict[str, Any]:
    organization = await api.organization(owner, **fields)
    response = await api.client.post(f"/api/v1/organizations/{organization['id']}/admission", headers=owner.headers)
    assert response.status_code == 200, response.text
    return {"id": organization["id"], **response.json()}


def failing_checks(result: dict[str, Any]) -> set[str]:
    return {f["check"] for f in result["verdict"]["findings"] if f["outcome"] in ("fail", "review")}


@pytest.fixture
async def owner(api: Api) -> Person:
    return await api.person("Applicant")


async def test_a_qualified_provider_is_admitted_with_its_verdict(api: Api, owner: Person) -> None:
    result = await apply(api, owner, kind="provider", dsmm_level=3, max_data_grade="important")
    assert result["status"] == "admitted"
    verdict = result["verdict"]
    assert verdict["decision"] == "accepted"
    assert verdict["stage"] == "admission"
    assert len(verdict["rulebook_fingerprint"]) == 64
    assert {f["rule_id"] for f in verdict["findings"]} >= {"R7", "R8", "S1", "S10"}
    organization = await api.client.get(f"/api/v1/organizations/{result['id']}", headers=owner.headers)
    assert organization.json()["status"] == "admitted"


async def test_wrong_uscc_check_character_is_not_admitted(api: Api, owner: Person) -> None:
    good = valid_uscc()
    wrong = good[:17] + ("0" if good[17] != "0" else "1")
    result = await apply(api, owner, uscc=wrong)
    assert result["status"] == "rejected"
    finding = next(f for f in result["verdict"]["findings"] if f["check"] == "S1.check-character")
    assert finding["outcome"] == "fail"
    assert finding["rule_id"] == "S1"
    assert finding["evidence"]["expected"] == good[17]


async def test_a_penalty_within_three_years_is_not_admitted(api: Api, owner: Person) -> None:
    result = await apply(api, owner, kind="provider", penalties_last_3y=1, last_penalty_on="2025-06-30")
    assert result["status"] == "rejected"
    assert "R7.penalties" in failing_checks(result)
    finding = next(f for f in result["verdict"]["findings"] if f["check"] == "R7.penalties")
    assert finding["rule_id"] == "R7"
    assert finding["outcome"] == "fail"


async def test_security_maturity_below_the_minimum_for_the_declared_grade_is_not_admitted(
    api: Api, owner: Person
) -> None:
    result = await apply(api, owner, kind="provider", dsmm_level=2, max_data_grade="important")
    assert result["status"] == "rejected"
    finding = next(f for f in result["verdict"]["findings"] if f["check"] == "S10.level-for-declared-grade")
    assert (finding["rule_id"], finding["outcome"]) == ("S10", "fail")
    # the same level is enough for general data
    other = await api.person("Other")
    assert (await apply(api, other, kind="provider", dsmm_level=2, max_data_grade="general"))["status"] == "admitted"


async def test_an_intermediary_without_fee_disclosure_is_not_admitted(api: Api, owner: Person) -> None:
    result = await apply(
        api,
        owner,
        kind="intermediary",
        intermediary={"roles": ["broker"], "fee_disclosure": "", "retains_no_traded_data": True},
    )
    assert result["status"] == "rejected"
    assert "R8.fee-disclosure" in failing_checks(result)


async def test_a_held_application_waits_for_an_administrator(api: Api, owner: Person) -> None:
    # a division code in the USCC that GB/T 2260 does not list is held for review (S1)
    body = "91999900MA6E1T0A0"
    from marketplace.kit.identifiers import uscc_check_char

    result = await apply(api, owner, uscc=body + uscc_check_char(body))
    assert result["status"] == "under_review", result["verdict"]["findings"]
    assert "S1.division-code" in failing_checks(result)
    admin = await api.admin()
    decided = await api.client.post(
        f"/api/v1/admin/organizations/{result['id']}/decision",
        json={"decision": "approve", "reason": "registered before the division was renamed"},
        headers=admin.headers,
    )
    assert decided.status_code == 200
    assert decided.json()["status"] == "admitted"


async def test_rejected_organisation_can_fix_and_apply_again(api: Api, owner: Person) -> None:
    result = await apply(api, owner, kind="provider", dsmm_level=1)
    assert result["status"] == "rejected"
    fixed = await api.client.patch(
        f"/api/v1/organizations/{result['id']}", json={"dsmm_level": 3}, headers=owner.headers
    )
    assert fixed.status_code == 200
    again = await api.client.post(f"/api/v1/organizations/{result['id']}/admission", headers=owner.headers)
    assert again.json()["status"] == "admitted"
    # an admitted organisation cannot apply twice
    twice = await api.client.post(f"/api/v1/organizations/{result['id']}/admission", headers=owner.headers)
    assert twice.status_code == 409


async def test_every_verdict_is_stored_and_audited(api: Api, owner: Person) -> None:
    result = await apply(api, owner, kind="provider", dsmm_level=1)
    admin = await api.admin()
    entries = await api.client.get(
        "/api/v1/admin/audit", params={"object_id": result["id"], "action": "verdict.recorded"}, headers=admin.headers
    )
    [entry] = entries.json()["items"]
    assert entry["payload"]["decision"] == "rejected"
    assert entry["payload"]["verdict_id"] == result["verdict"]["id"]
    assert "R7.security-capability" in entry["payload"]["failed_checks"]


async def test_rules_endpoint_lists_the_rulebook(api: Api) -> None:
    response = await api.client.get("/api/v1/rules")
    assert response.status_code == 200
    body = response.json()
    ids = [item["id"] for item in body["items"]]
    assert ids == [f"R{n}" for n in range(1, 9)] + [f"S{n}" for n in range(1, 11)]
    assert body["fingerprint"] == api.app.state.runtime.rulebook.fingerprint
    s1 = body["items"][ids.index("S1")]
    assert s1["title"] == "GB 32100-2015 unified social credit code"
    assert set(s1["stages"]) == {"admission", "trade"}
    chinese = await api.client.get("/api/v1/rules", headers={"Accept-Language": "zh-CN"})
    assert chinese.headers["content-language"] == "zh-CN"
    assert chinese.json()["items"][ids.index("S1")]["title"] == "统一社会信用代码（GB 32100-2015）"
