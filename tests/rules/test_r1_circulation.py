"""R1 — data element circulation and trading rules: registration, scenarios, licence terms,
delivery mode, self-dealing, dispute route, licences left."""

from __future__ import annotations

import json

import pytest

from marketplace.compliance.contract import Finding, Outcome, Stage
from marketplace.compliance.rulebook import build_rulebook
from marketplace.compliance.snapshots import Snapshot
from rules.r1_circulation import CirculationRule
from tests.rules.snapshots import (
    BUYER,
    PRODUCT,
    PROVIDER,
    TRADE,
    admission_snapshot,
    by_check,
    context,
    delivery_snapshot,
    listing_snapshot,
    replace,
    trade_snapshot,
)

RULE = CirculationRule()

LISTING_CHECKS = {
    "R1.registered",
    "R1.scenarios-declared",
    "R1.delivery-modes",
    "R1.dataset-hosted",
    "R1.licence-terms",
    "R1.dispute-route",
}
TRADE_CHECKS = {
    "R1.scenario",
    "R1.licence-accepted",
    "R1.delivery-mode",
    "R1.dataset-hosted",
    "R1.self-dealing",
    "R1.dispute-route",
    "R1.licences-available",
}


def listing(rule: CirculationRule = RULE, /, **product_changes: object) -> dict[str, Finding]:
    product = replace(PRODUCT, **product_changes)
    return by_check(rule.evaluate(context(Stage.LISTING, listing_snapshot(product))))


def trade(rule: CirculationRule = RULE, /, **parts: object) -> dict[str, Finding]:
    return by_check(rule.evaluate(context(Stage.TRADE, trade_snapshot(**parts))))


def test_declarations() -> None:
    assert RULE.id == "R1"
    assert RULE.title_zh == "数据要素流通交易规则"
    assert RULE.title_en == "Data element circulation and trading rules"
    assert RULE.version == "1.1.0"
    assert RULE.stages == frozenset({Stage.LISTING, Stage.TRADE})
    assert RULE.parameters == {"accepted_dispute_routes": ["negotiation", "mediation", "arbitration"]}
    assert "Civil Code Art. 470" in RULE.basis


def test_other_stages_yield_nothing() -> None:
    assert RULE.evaluate(context(Stage.ADMISSION, admission_snapshot())) == []
    assert RULE.evaluate(context(Stage.DELIVERY, delivery_snapshot())) == []


# --- listing -------------------------------------------------------------------------------


def test_listing_passes_for_the_realistic_product() -> None:
    findings = listing()
    assert set(findings) == LISTING_CHECKS
    assert all(f.outcome is Outcome.PASS for f in findings.values())
    assert findings["R1.registered"].evidence["registration_number"] == "GZDE-2026-000123"
    assert findings["R1.scenarios-declared"].evidence["permitted_scenarios"] == [
        "traffic_planning",
        "logistics_routing",
    ]
    assert findings["R1.delivery-modes"].evidence["delivery_modes"] == ["file", "api"]
    assert findings["R1.licence-terms"].evidence["scope"] == "internal analysis"
    assert findings["R1.licence-terms"].evidence["max_licences"] == 100
    assert findings["R1.dispute-route"].evidence["dispute_route"] == "arbitration"
    for finding in findings.values():
        json.dumps(finding.as_json())
        assert finding.basis


@pytest.mark.parametrize("number", [None, "", "   "])
def test_listing_fails_an_unregistered_product(number: str | None) -> None:
    finding = listing(registration_number=number)["R1.registered"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["registration_number"] == number


@pytest.mark.parametrize("scenarios", [(), ("  ",)])
def test_listing_fails_without_permitted_scenarios(scenarios: tuple[str, ...]) -> None:
    finding = listing(permitted_scenarios=scenarios)["R1.scenarios-declared"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["permitted_scenarios"] == list(scenarios)


def test_listing_fails_without_delivery_modes() -> None:
    finding = listing(delivery_modes=())["R1.delivery-modes"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["delivery_modes"] == []


@pytest.mark.parametrize("modes", [("file",), ("api",), ("privacy_computing",), ("file", "api")])
def test_listing_fails_an_offer_of_delivery_without_the_hosted_dataset(modes: tuple[str, ...]) -> None:
    finding = listing(delivery_modes=modes, content_sha256=None)["R1.dataset-hosted"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence == {"delivery_modes": list(modes), "content_sha256": None}
    assert "its dataset is not hosted" in finding.message


def test_listing_passes_the_hosted_dataset() -> None:
    finding = listing()["R1.dataset-hosted"]
    assert finding.outcome is Outcome.PASS
    assert finding.evidence == {"delivery_modes": ["file", "api"], "content_sha256": PRODUCT.content_sha256}


def test_no_delivery_mode_needs_no_dataset_and_fails_elsewhere() -> None:
    findings = listing(delivery_modes=(), content_sha256=None)
    assert findings["R1.dataset-hosted"].outcome is Outcome.NOT_APPLICABLE
    assert findings["R1.delivery-modes"].outcome is Outcome.FAIL


def test_listing_fails_without_licence_terms() -> None:
    finding = listing(licence=None)["R1.licence-terms"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence == {"licence": None}


def test_listing_fails_licence_terms_without_scope() -> None:
    finding = listing(licence={"scope": " ", "term_days": 365})["R1.licence-terms"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["scope"] == " "


def test_listing_fails_without_dispute_route() -> None:
    finding = listing(dispute_route=None)["R1.dispute-route"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["dispute_route"] is None


def test_listing_without_product_fails_closed() -> None:
    findings = by_check(RULE.evaluate(context(Stage.LISTING, Snapshot(provider=PROVIDER))))
    assert set(findings) == LISTING_CHECKS
    assert all(f.outcome is Outcome.FAIL for f in findings.values())
    assert all(f.evidence == {"product": None} for f in findings.values())


# --- trade ---------------------------------------------------------------------------------


def test_trade_passes_for_the_realistic_trade() -> None:
    findings = trade()
    assert set(findings) == TRADE_CHECKS
    assert all(f.outcome is Outcome.PASS for f in findings.values())
    assert findings["R1.scenario"].evidence == {
        "scenario": "logistics_routing",
        "permitted_scenarios": ["traffic_planning", "logistics_routing"],
    }
    assert findings["R1.licence-accepted"].evidence == {
        "licence_terms_accepted": True,
        "product_has_licence_terms": True,
    }
    assert findings["R1.delivery-mode"].evidence == {"delivery_mode": "api", "offered_modes": ["file", "api"]}
    assert findings["R1.self-dealing"].evidence == {
        "buyer_id": "org-buyer",
        "provider_id": "org-provider",
        "same_organization_id": False,
        "same_uscc": False,
    }
    assert findings["R1.dispute-route"].evidence["dispute_route"] == "arbitration"
    assert findings["R1.licences-available"].evidence == {"licences_available": 42, "quantity": 1, "max_licences": 100}
    for finding in findings.values():
        json.dumps(finding.as_json())


@pytest.mark.parametrize("scenario", [None, ""])
def test_trade_fails_without_a_scenario(scenario: str | None) -> None:
    finding = trade(trade=replace(TRADE, scenario=scenario))["R1.scenario"]
    assert finding.outcome is Outcome.FAIL
    assert "no scenario, no trade" in finding.message
    assert finding.evidence["scenario"] == scenario


def test_trade_fails_a_scenario_outside_the_permitted_ones() -> None:
    finding = trade(trade=replace(TRADE, scenario="credit_scoring"))["R1.scenario"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["scenario"] == "credit_scoring"
    assert finding.evidence["permitted_scenarios"] == ["traffic_planning", "logistics_routing"]


def test_trade_fails_when_licence_terms_are_not_accepted() -> None:
    finding = trade(trade=replace(TRADE, licence_terms_accepted=False))["R1.licence-accepted"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["licence_terms_accepted"] is False


def test_trade_fails_when_the_product_has_no_licence_terms() -> None:
    finding = trade(product=replace(PRODUCT, licence=None))["R1.licence-accepted"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["product_has_licence_terms"] is False


def test_trade_fails_a_delivery_mode_the_product_does_not_offer() -> None:
    finding = trade(trade=replace(TRADE, delivery_mode="privacy_computing"))["R1.delivery-mode"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence == {"delivery_mode": "privacy_computing", "offered_modes": ["file", "api"]}


def test_trade_fails_a_version_whose_dataset_is_not_hosted() -> None:
    """A version listed without its dataset (under a rulebook that did not ask) is not sold."""
    finding = trade(product=replace(PRODUCT, content_sha256=None))["R1.dataset-hosted"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence == {"delivery_modes": [TRADE.delivery_mode], "content_sha256": None}
    assert f"offers {TRADE.delivery_mode} delivery but its dataset is not hosted" in finding.message


def test_trade_fails_self_dealing_by_organisation_id() -> None:
    finding = trade(buyer=replace(BUYER, id=PROVIDER.id))["R1.self-dealing"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["same_organization_id"] is True


@pytest.mark.parametrize(
    "uscc",
    [PROVIDER.uscc, PROVIDER.uscc.lower(), f"{PROVIDER.uscc[:6]}-{PROVIDER.uscc[6:]}"],
    ids=["same", "lower-case", "hyphenated"],
)
def test_trade_fails_self_dealing_by_credit_code(uscc: str) -> None:
    finding = trade(buyer=replace(BUYER, uscc=uscc))["R1.self-dealing"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["same_organization_id"] is False
    assert finding.evidence["same_uscc"] is True


def test_trade_falls_back_to_the_product_dispute_route() -> None:
    finding = trade(trade=replace(TRADE, dispute_route=None))["R1.dispute-route"]
    assert finding.outcome is Outcome.PASS
    assert finding.evidence["dispute_route"] == "arbitration"
    assert finding.evidence["trade_route"] is None
    assert finding.evidence["product_route"] == "arbitration"


def test_trade_fails_when_no_dispute_route_is_named() -> None:
    finding = trade(trade=replace(TRADE, dispute_route=None), product=replace(PRODUCT, dispute_route=None))[
        "R1.dispute-route"
    ]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["dispute_route"] is None


@pytest.mark.parametrize(("available", "quantity"), [(0, 1), (2, 3)])
def test_trade_fails_when_too_few_licences_are_left(available: int, quantity: int) -> None:
    finding = trade(trade=replace(TRADE, licences_available=available, quantity=quantity))["R1.licences-available"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["licences_available"] == available
    assert finding.evidence["quantity"] == quantity


def test_trade_passes_when_exactly_enough_licences_are_left() -> None:
    finding = trade(trade=replace(TRADE, licences_available=3, quantity=3))["R1.licences-available"]
    assert finding.outcome is Outcome.PASS


def test_trade_fails_closed_when_a_capped_product_reports_no_count() -> None:
    finding = trade(trade=replace(TRADE, licences_available=None))["R1.licences-available"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence == {"licences_available": None, "quantity": 1, "max_licences": 100}


def test_licences_available_is_not_applicable_when_nothing_limits_the_sale() -> None:
    product = replace(PRODUCT, licence={"scope": "internal analysis", "term_days": 365, "max_licences": None})
    finding = trade(product=product, trade=replace(TRADE, licences_available=None))["R1.licences-available"]
    assert finding.outcome is Outcome.NOT_APPLICABLE
    assert finding.evidence["max_licences"] is None


def test_trade_without_trade_or_product_fails_closed() -> None:
    snapshot = Snapshot(provider=PROVIDER, buyer=BUYER, product=PRODUCT)
    findings = by_check(RULE.evaluate(context(Stage.TRADE, snapshot)))
    assert set(findings) == TRADE_CHECKS
    for check in TRADE_CHECKS - {"R1.self-dealing"}:
        assert findings[check].outcome is Outcome.FAIL
        assert findings[check].evidence == {"product_present": True, "trade_present": False}
    assert findings["R1.self-dealing"].outcome is Outcome.PASS

    no_product = by_check(RULE.evaluate(context(Stage.TRADE, trade_snapshot(product=None))))
    assert no_product["R1.scenario"].outcome is Outcome.FAIL
    assert no_product["R1.scenario"].evidence == {"product_present": False, "trade_present": True}


def test_trade_without_buyer_fails_self_dealing_closed() -> None:
    finding = trade(buyer=None)["R1.self-dealing"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence == {"buyer_id": None, "provider_id": "org-provider"}


def test_repeated_evaluation_follows_the_facts() -> None:
    rule = CirculationRule()
    first = trade(rule)
    assert trade(rule) == first  # same facts, same findings
    assert trade(rule, trade=replace(TRADE, scenario="credit_scoring"))["R1.scenario"].outcome is Outcome.FAIL
    assert trade(rule, buyer=replace(BUYER, uscc=PROVIDER.uscc))["R1.self-dealing"].outcome is Outcome.FAIL
    assert trade(rule)["R1.scenario"].outcome is Outcome.PASS


# --- parameters ----------------------------------------------------------------------------


def test_accepted_dispute_routes_parameter_changes_the_outcome() -> None:
    rulebook = build_rulebook(
        {"R1": CirculationRule}, {"rules": {"R1": {"parameters": {"accepted_dispute_routes": ["arbitration"]}}}}
    )
    active = rulebook.get("R1")
    assert active is not None
    rule = active.rule
    assert isinstance(rule, CirculationRule)

    mediation = replace(PRODUCT, dispute_route="mediation")
    assert listing(dispute_route="mediation")["R1.dispute-route"].outcome is Outcome.PASS
    strict = listing(rule, dispute_route="mediation")["R1.dispute-route"]
    assert strict.outcome is Outcome.FAIL
    assert strict.evidence["accepted"] == ["arbitration"]

    negotiated = replace(TRADE, dispute_route="negotiation")
    assert trade(trade=negotiated, product=mediation)["R1.dispute-route"].outcome is Outcome.PASS
    assert trade(rule, trade=negotiated, product=mediation)["R1.dispute-route"].outcome is Outcome.FAIL
    assert trade(rule)["R1.dispute-route"].outcome is Outcome.PASS
