"""Hole 11, the schema judging what a rule should: a USCC of the wrong length was refused by a schema pattern
(400, no verdict, no rule named) while other bad codes reached S1 and were named. Every value a rule or
standard judges now reaches it, and the verdict is stored and names it; the request schema keeps what
protects the service (types, sizes, encodings), so a code far beyond any real one is still a 400."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from marketplace.demo.factories import organization_body, plan_body, product_body, valid_uscc
from marketplace.kit import clock
from tests.fixtures.api import Api, Person
from tests.orders.conftest import Market, submitted_product
from tests.test_bad_input import assert_problem, row_counts


def failed(verdict: dict[str, Any], check: str, outcome: str = "fail") -> dict[str, Any]:
    """The finding of `check` in a verdict, which must have that outcome."""
    finding = next((f for f in verdict["findings"] if f["check"] == check), None)
    assert finding is not None, [f["check"] for f in verdict["findings"]]
    assert finding["outcome"] == outcome, finding
    return dict(finding)


async def assert_stored(api: Api, admin: Person, subject_id: str, verdict: dict[str, Any], check: str) -> None:
    """The verdict was stored with its subject, and the audit log names the check that refused it."""
    assert verdict["id"] is not None
    entries = await api.client.get(
        "/api/v1/admin/audit", params={"object_id": subject_id, "action": "verdict.recorded"}, headers=admin.headers
    )
    assert entries.status_code == 200, entries.text
    recorded = [e["payload"] for e in entries.json()["items"] if e["payload"]["verdict_id"] == verdict["id"]]
    assert len(recorded) == 1
    assert check in recorded[0]["failed_checks"]


async def admission(api: Api, owner: Person, **fields: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """An organisation registered with `fields` as sent and put to the admission stage: (it, the answer)."""
    organization = await api.organization(owner, fields.pop("kind", "provider"), **fields)
    response = await api.client.post(f"/api/v1/organizations/{organization['id']}/admission", headers=owner.headers)
    assert response.status_code == 200, response.text
    return organization, dict(response.json())


def wrong_check_character(code: str) -> str:
    return code[:17] + ("0" if code[17] != "0" else "1")


@pytest.mark.parametrize(
    ("uscc", "check"),
    [
        pytest.param(valid_uscc()[:17], "S1.length", id="17-characters"),
        pytest.param(valid_uscc() + "1", "S1.length", id="19-characters"),
        pytest.param("", "S1.length", id="empty"),
        pytest.param(valid_uscc().lower(), "S1.alphabet", id="lower-case"),
        pytest.param("91520100MA6DKX1I5H", "S1.alphabet", id="letter-I"),
        pytest.param(wrong_check_character(valid_uscc()), "S1.check-character", id="check-character"),
    ],
)
async def test_a_bad_uscc_reaches_s1_and_the_organisation_is_not_admitted(api: Api, uscc: str, check: str) -> None:
    admin, owner = await api.admin(), await api.person("Owner")
    organization, answer = await admission(api, owner, uscc=uscc)
    assert answer["status"] == "rejected"
    finding = failed(answer["verdict"], check)
    assert finding["rule_id"] == "S1"
    assert finding["evidence"]["uscc"] == uscc
    await assert_stored(api, admin, organization["id"], answer["verdict"], check)
    after = await api.client.get(f"/api/v1/organizations/{organization['id']}", headers=owner.headers)
    assert after.json()["status"] == "rejected"
    assert after.json()["admitted_at"] is None


@pytest.mark.parametrize(
    ("fields", "check"),
    [
        pytest.param({"dsmm_level": 6}, "S10.level-recorded", id="dsmm-level-above-5"),
        pytest.param({"dsmm_level": -1}, "S10.level-recorded", id="dsmm-level-below-0"),
        pytest.param(
            {
                "kind": "intermediary",
                "intermediary": {"roles": [], "fee_disclosure": "2% of the price", "retains_no_traded_data": True},
            },
            "R8.roles",
            id="intermediary-without-a-role",
        ),
    ],
)
async def test_bad_qualifications_reach_their_rule_and_the_organisation_is_not_admitted(
    api: Api, fields: dict[str, Any], check: str
) -> None:
    admin, owner = await api.admin(), await api.person("Owner")
    organization, answer = await admission(api, owner, **fields)
    assert answer["status"] == "rejected"
    assert failed(answer["verdict"], check)["rule_id"] == check.split(".")[0]
    await assert_stored(api, admin, organization["id"], answer["verdict"], check)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"uscc": "9" * 65}, id="uscc-beyond-64"),
        pytest.param({"uscc": "91520100MA6DKX1B5\x00"}, id="uscc-with-nul"),
        pytest.param({"jurisdiction": "5" * 17}, id="jurisdiction-beyond-16"),
        pytest.param({"dsmm_level": 10**6}, id="dsmm-level-beyond-1000"),
        pytest.param({"uscc": 915201001234567890}, id="uscc-not-text"),
    ],
)
async def test_what_protects_the_service_is_still_the_schemas(api: Api, fields: dict[str, Any]) -> None:
    owner = await api.person("Owner")
    before = await row_counts(api)
    response = await api.client.post(
        "/api/v1/organizations", json=organization_body("provider", **fields), headers=owner.headers
    )
    assert_problem(response, 400)
    assert await row_counts(api) == before


def _cost(market: Market, **changes: Any) -> dict[str, Any]:
    return {**product_body(market.provider_org["id"])["cost"], **changes}


def _quality(market: Market, **changes: Any) -> dict[str, Any]:
    return {**product_body(market.provider_org["id"])["quality"], **changes}


def _valuation(method: str) -> dict[str, Any]:
    issued_on = (clock.now().date() - timedelta(days=10)).isoformat()
    assessment = {"assessor_organization_id": str(uuid.uuid4()), "issued_on": issued_on}
    return {"method": method, "value_minor": 200_000_000, "currency": "CNY", "assessment": assessment}


# What a provider declares, the check that judges it, and the listing stage's answer.
DECLARATIONS = [
    pytest.param(lambda m: {"industry_code": "54310"}, "S7.industry-code", "rejected", id="industry-code-5-digits"),
    pytest.param(lambda m: {"industry_code": "G5431-2017"}, "S7.industry-code", "rejected", id="industry-code-long"),
    pytest.param(lambda m: {"regions": ["52010"]}, "S8.region-coverage", "rejected", id="division-code-5-digits"),
    pytest.param(lambda m: {"regions": ["5201000"]}, "S8.region-coverage", "rejected", id="division-code-7-digits"),
    pytest.param(lambda m: {"regions": []}, "S8.region-coverage", "rejected", id="no-regions"),
    pytest.param(lambda m: {"grade": "secret"}, "S2.grade", "rejected", id="grade-outside-the-vocabulary"),
    pytest.param(lambda m: {"category": "road traffic"}, "S2.category", "rejected", id="unknown-category"),
    pytest.param(
        lambda m: {"quality": _quality(m, completeness=1.5)}, "S5.indicators-declared", "rejected", id="score-above-1"
    ),
    pytest.param(
        lambda m: {"quality": _quality(m, accuracy=-0.2)}, "S5.indicators-declared", "rejected", id="score-below-0"
    ),
    pytest.param(
        lambda m: {"cost": _cost(m, other_minor=-1)}, "R4.non-negative", "rejected", id="negative-cost-component"
    ),
    pytest.param(lambda m: {"cost": _cost(m, currency="yuan")}, "R4.currency", "rejected", id="cost-currency"),
    pytest.param(lambda m: {"cost": _cost(m, method="")}, "R4.method", "rejected", id="cost-method-blank"),
    pytest.param(
        lambda m: {"contains_personal_info": True, "pi_legal_basis": "we asked nicely"},
        "R2.pi-legal-basis",
        "rejected",
        id="unknown-legal-basis",
    ),
    pytest.param(lambda m: {"registration_number": "  "}, "R1.registered", "rejected", id="blank-registration"),
    pytest.param(
        lambda m: {"licence": {"scope": " ", "term_days": 365}}, "R1.licence-terms", "rejected", id="blank-scope"
    ),
    pytest.param(lambda m: {"permitted_scenarios": []}, "R1.scenarios-declared", "rejected", id="no-scenarios"),
    pytest.param(lambda m: {"delivery_modes": []}, "R1.delivery-modes", "rejected", id="no-delivery-modes"),
    pytest.param(lambda m: {"dispute_route": "court"}, "R1.dispute-route", "rejected", id="unknown-dispute-route"),
    pytest.param(
        lambda m: {"provenance": {"source_entity": " ", "activities": []}},
        "S9.source-entity",
        "rejected",
        id="blank-source-entity",
    ),
    pytest.param(lambda m: {"valuation": _valuation("guess")}, "R6.valuation-method", "rejected", id="bad-method"),
    pytest.param(
        lambda m: {"reference_price_minor": -5}, "R5.reference-deviation", "under_review", id="negative-reference"
    ),
]


@pytest.mark.parametrize(("declared", "check", "status"), DECLARATIONS)
async def test_a_bad_declaration_reaches_its_rule_and_the_product_is_not_listed(
    market: Market, declared: Any, check: str, status: str
) -> None:
    product_id, _, answer = await submitted_product(
        market.api, market.provider, market.provider_org["id"], **declared(market)
    )
    assert answer["status"] == status
    finding = failed(answer["verdict"], check, "fail" if status == "rejected" else "review")
    assert finding["rule_id"] == check.split(".")[0]
    await assert_stored(market.api, market.admin, product_id, answer["verdict"], check)
    seen = await market.api.client.get(f"/api/v1/products/{product_id}", headers=market.buyer.headers)
    assert seen.status_code == 404  # not on sale


@pytest.mark.parametrize(
    "declared",
    [
        pytest.param({"category": "c" * 41}, id="category-beyond-its-column"),
        pytest.param({"industry_code": "5" * 33}, id="industry-code-beyond-32"),
        pytest.param({"regions": ["5" * 17]}, id="division-code-beyond-16"),
        pytest.param({"regions": ["520100"] * 101}, id="more-than-100-regions"),
        pytest.param({"grade": "g" * 17}, id="grade-beyond-16"),
        pytest.param({"quality": {"completeness": "0.9"}}, id="score-not-a-number"),
    ],
)
async def test_what_protects_the_catalog_is_still_the_schemas(market: Market, declared: dict[str, Any]) -> None:
    before = await row_counts(market.api)
    response = await market.api.client.post(
        "/api/v1/products", json=product_body(market.provider_org["id"], **declared), headers=market.provider.headers
    )
    assert_problem(response, 400)
    assert await row_counts(market.api) == before


async def test_a_bad_pricing_basis_reaches_r5(market: Market) -> None:
    product_id, _, answer = await submitted_product(
        market.api, market.provider, market.provider_org["id"], plan=plan_body(90_000, pricing_basis="whim")
    )
    assert answer["status"] == "rejected"
    assert failed(answer["verdict"], "R5.pricing-basis")["evidence"]["allowed"] == ["cost", "income", "market"]
    await assert_stored(market.api, market.admin, product_id, answer["verdict"], "R5.pricing-basis")


async def test_a_provider_of_unknown_jurisdiction_is_refused_by_s8_at_listing(market: Market) -> None:
    """S8 judges jurisdictions where they matter, at listing (the provider's) and trade (the buyer's): the
    rulebook puts it at those stages, not at admission."""
    api = market.api
    owner = await api.person("Provider")
    provider = await api.admitted_organization(owner, market.admin, kind="provider", dsmm_level=3, jurisdiction="5201")
    product_id, _, answer = await submitted_product(api, owner, provider["id"])
    assert answer["status"] == "rejected"
    assert failed(answer["verdict"], "S8.provider-jurisdiction")["evidence"]["jurisdiction"] == "5201"
    await assert_stored(api, market.admin, product_id, answer["verdict"], "S8.provider-jurisdiction")


async def test_a_buyer_of_unknown_jurisdiction_is_refused_by_s8_at_trade(market: Market) -> None:
    api = market.api
    owner = await api.person("Buyer")
    buyer = await api.admitted_organization(owner, market.admin, kind="buyer", dsmm_level=3, jurisdiction="Guizhou")
    trade = market.trade(buyer_organization_id=buyer["id"])
    preview = await api.client.post("/api/v1/compliance/preview", json=trade, headers=owner.headers)
    assert preview.status_code == 200, preview.text
    assert preview.json()["decision"] == "rejected"
    failed(preview.json(), "S8.buyer-jurisdiction")
    before = await row_counts(api)
    placed = await market.place(as_=owner, buyer_organization_id=buyer["id"])
    refused = assert_problem(placed, 422)
    assert "S8.buyer-jurisdiction" in refused["detail"]
    order = await market.order(refused["order_id"], owner)
    assert order["status"] == "rejected"
    assert order["licences_reserved"] == 0
    after = await row_counts(api)
    for table in ("licence", "ledger_transfer", "access_key"):
        assert after[table] == before[table], table


@pytest.mark.parametrize("scenario", ["", "traffic planning"])
async def test_a_bad_scenario_reaches_r1_at_trade_and_nothing_is_reserved(market: Market, scenario: str) -> None:
    api = market.api
    preview = await api.client.post(
        "/api/v1/compliance/preview", json=market.trade(scenario=scenario), headers=market.buyer.headers
    )
    assert preview.status_code == 200, preview.text
    assert preview.json()["decision"] == "rejected"
    failed(preview.json(), "R1.scenario")
    before = await row_counts(api)
    refused = assert_problem(await market.place(scenario=scenario), 422)
    assert "R1.scenario" in refused["detail"]
    order = await market.order(refused["order_id"])
    assert (order["status"], order["scenario"], order["licences_reserved"]) == ("rejected", scenario, 0)
    after = await row_counts(api)
    for table in ("licence", "ledger_transfer", "access_key"):
        assert after[table] == before[table], table
