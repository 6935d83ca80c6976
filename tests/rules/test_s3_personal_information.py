"""S3 — GB/T 35273-2020 personal information security specification: consented purposes,
the buyer's scenario within them, minimal fields per purpose, separate consent for
sensitive PI."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest

from marketplace.compliance.contract import Finding, Outcome, Stage
from marketplace.compliance.rulebook import build_rulebook
from marketplace.compliance.snapshots import FieldSpec, ProductFacts, Snapshot
from rules.s3_personal_information import PersonalInformationStandard
from tests.rules.snapshots import (
    PRODUCT,
    TRADE,
    admission_snapshot,
    context,
    delivery_snapshot,
    listing_snapshot,
    replace,
    trade_snapshot,
)

RULE = PersonalInformationStandard()
LISTING_CHECKS = ["S3.consented-purposes", "S3.field-purposes", "S3.sensitive-consent"]
TRADE_CHECKS = ["S3.consented-purposes", "S3.scenario-within-consent", "S3.field-minimality", "S3.sensitive-consent"]
NON_PERSONAL_FIELDS = tuple(f for f in PRODUCT.fields if not f.personal)
SENSITIVE_FIELD = FieldSpec(
    name="health_condition", personal=True, sensitive=True, purposes=("traffic_planning", "logistics_routing")
)


def keyed(findings: list[Finding], expected: list[str]) -> dict[str, Finding]:
    assert [f.check for f in findings] == expected
    for finding in findings:
        json.dumps(finding.as_json())
    return {f.check.removeprefix("S3."): f for f in findings}


def at_listing(product: ProductFacts, rule: PersonalInformationStandard = RULE) -> dict[str, Finding]:
    return keyed(rule.evaluate(context(Stage.LISTING, listing_snapshot(product=product))), LISTING_CHECKS)


def at_trade(
    product: ProductFacts = PRODUCT, rule: PersonalInformationStandard = RULE, **parts: Any
) -> dict[str, Finding]:
    return keyed(rule.evaluate(context(Stage.TRADE, trade_snapshot(product=product, **parts))), TRADE_CHECKS)


def product_with(**changes: Any) -> ProductFacts:
    return replace(PRODUCT, **changes)


def scenario(value: str | None) -> dict[str, Any]:
    return {"trade": replace(TRADE, scenario=value)}


def test_declarations() -> None:
    module = importlib.import_module("rules.s3_personal_information")
    assert module.PersonalInformationStandard is PersonalInformationStandard
    assert RULE.id == "S3"
    assert RULE.stages == frozenset({Stage.LISTING, Stage.TRADE})
    assert RULE.parameters == {"excess_fields_review": False}
    assert any("GB/T 35273-2020" in b for b in RULE.basis)


def test_other_stages_yield_nothing() -> None:
    assert RULE.evaluate(context(Stage.DELIVERY, delivery_snapshot())) == []
    assert RULE.evaluate(context(Stage.ADMISSION, admission_snapshot())) == []


# --- pass -----------------------------------------------------------------------------------------


def test_listing_passes_for_the_realistic_product() -> None:
    found = at_listing(PRODUCT)
    assert found["consented-purposes"].outcome is Outcome.PASS
    assert found["consented-purposes"].evidence["consented_purposes"] == ["traffic_planning", "logistics_routing"]
    assert found["field-purposes"].outcome is Outcome.PASS
    assert found["field-purposes"].evidence == {"personal_fields": 1, "fields_without_purpose": []}
    assert found["sensitive-consent"].outcome is Outcome.NOT_APPLICABLE


def test_trade_passes_for_the_realistic_trade() -> None:
    found = at_trade()
    assert found["consented-purposes"].outcome is Outcome.PASS
    assert found["scenario-within-consent"].outcome is Outcome.PASS
    assert found["scenario-within-consent"].evidence["scenario"] == "logistics_routing"
    assert found["field-minimality"].outcome is Outcome.PASS
    assert found["field-minimality"].evidence == {
        "scenario": "logistics_routing",
        "personal_fields": 1,
        "excess_fields": [],
    }
    assert found["sensitive-consent"].outcome is Outcome.NOT_APPLICABLE


# --- not applicable --------------------------------------------------------------------------------


def test_no_personal_information_makes_every_check_not_applicable() -> None:
    product = product_with(contains_personal_info=False, fields=NON_PERSONAL_FIELDS)
    assert all(f.outcome is Outcome.NOT_APPLICABLE for f in at_listing(product).values())
    assert all(f.outcome is Outcome.NOT_APPLICABLE for f in at_trade(product).values())


def test_a_personal_field_makes_the_rule_apply_whatever_the_flag_says() -> None:
    found = at_listing(product_with(contains_personal_info=False))
    assert found["field-purposes"].outcome is Outcome.PASS


def test_consent_checks_do_not_apply_to_other_legal_bases() -> None:
    product = product_with(pi_legal_basis="contract", consented_purposes=())
    found = at_trade(product, **scenario("marketing"))
    assert found["consented-purposes"].outcome is Outcome.NOT_APPLICABLE
    assert found["consented-purposes"].evidence["pi_legal_basis"] == "contract"
    assert found["scenario-within-consent"].outcome is Outcome.NOT_APPLICABLE
    assert at_listing(product)["consented-purposes"].outcome is Outcome.NOT_APPLICABLE


def test_no_personal_field_at_trade_makes_minimality_not_applicable() -> None:
    found = at_trade(product_with(fields=NON_PERSONAL_FIELDS))
    assert found["field-minimality"].outcome is Outcome.NOT_APPLICABLE
    assert found["field-minimality"].evidence["personal_fields"] == 0


# --- fail closed -------------------------------------------------------------------------------------


def test_no_product_fails_every_check() -> None:
    listing = RULE.evaluate(context(Stage.LISTING, Snapshot()))
    assert [f.check for f in listing] == LISTING_CHECKS
    assert all(f.outcome is Outcome.FAIL for f in listing)
    trade = RULE.evaluate(context(Stage.TRADE, trade_snapshot(product=None)))
    assert [f.check for f in trade] == TRADE_CHECKS
    assert all(f.outcome is Outcome.FAIL for f in trade)


def test_no_trade_fails_the_scenario_checks() -> None:
    found = at_trade(trade=None)
    assert found["scenario-within-consent"].outcome is Outcome.FAIL
    assert found["field-minimality"].outcome is Outcome.FAIL


# --- consented purposes -------------------------------------------------------------------------------


def test_consent_without_recorded_purposes_fails() -> None:
    product = product_with(consented_purposes=())
    found = at_listing(product)["consented-purposes"]
    assert found.outcome is Outcome.FAIL
    assert found.evidence["consented_purposes"] == []
    assert at_trade(product)["consented-purposes"].outcome is Outcome.FAIL


def test_sold_under_consent_needs_purposes_whatever_the_legal_basis() -> None:
    product = product_with(pi_legal_basis="contract", sold_under_consent=True, consented_purposes=())
    found = at_listing(product)["consented-purposes"]
    assert found.outcome is Outcome.FAIL
    assert found.evidence["sold_under_consent"] is True


# --- buyer's scenario -----------------------------------------------------------------------------------


def test_scenario_outside_the_consent_fails() -> None:
    found = at_trade(**scenario("precision_marketing"))
    within = found["scenario-within-consent"]
    assert within.outcome is Outcome.FAIL
    assert within.evidence == {
        "scenario": "precision_marketing",
        "consented_purposes": ["traffic_planning", "logistics_routing"],
    }
    # age_band is not needed for that scenario either.
    assert found["field-minimality"].outcome is Outcome.FAIL
    assert found["field-minimality"].evidence["excess_fields"] == ["age_band"]


@pytest.mark.parametrize("value", [None, ""])
def test_no_scenario_fails(value: str | None) -> None:
    found = at_trade(**scenario(value))
    assert found["scenario-within-consent"].outcome is Outcome.FAIL
    assert found["field-minimality"].outcome is Outcome.FAIL
    assert found["field-minimality"].evidence["scenario"] == value


# --- fields minimal for the purpose ------------------------------------------------------------------------


def test_personal_field_without_purpose_fails_at_listing() -> None:
    fields = (*NON_PERSONAL_FIELDS, FieldSpec(name="age_band", personal=True), FieldSpec(name="gender", personal=True))
    found = at_listing(product_with(fields=fields))["field-purposes"]
    assert found.outcome is Outcome.FAIL
    assert found.evidence == {"personal_fields": 2, "fields_without_purpose": ["age_band", "gender"]}


def test_pi_product_without_personal_fields_goes_to_review_at_listing() -> None:
    found = at_listing(product_with(fields=NON_PERSONAL_FIELDS))["field-purposes"]
    assert found.outcome is Outcome.REVIEW
    assert found.evidence["personal_fields"] == 0


def excess_product() -> ProductFacts:
    fields = (
        *NON_PERSONAL_FIELDS,
        FieldSpec(name="age_band", personal=True, purposes=("traffic_planning", "logistics_routing")),
        FieldSpec(name="home_district", personal=True, purposes=("traffic_planning",)),
    )
    return product_with(fields=fields)


def test_personal_field_not_needed_for_the_scenario_fails_at_trade() -> None:
    found = at_trade(excess_product())
    assert found["scenario-within-consent"].outcome is Outcome.PASS
    minimal = found["field-minimality"]
    assert minimal.outcome is Outcome.FAIL
    assert minimal.evidence == {
        "scenario": "logistics_routing",
        "personal_fields": 2,
        "excess_fields": ["home_district"],
    }
    assert "home_district" in minimal.message


def test_excess_fields_go_to_review_when_configured() -> None:
    config = {"rules": {"S3": {"parameters": {"excess_fields_review": True}}}}
    active = build_rulebook({"S3": PersonalInformationStandard}, config).get("S3")
    assert active is not None
    assert isinstance(active.rule, PersonalInformationStandard)
    minimal = at_trade(excess_product(), active.rule)["field-minimality"]
    assert minimal.outcome is Outcome.REVIEW
    assert minimal.evidence["excess_fields"] == ["home_district"]


# --- sensitive PI --------------------------------------------------------------------------------------------


def test_sensitive_pi_without_separate_consent_fails() -> None:
    product = product_with(contains_sensitive_personal_info=True, fields=(*PRODUCT.fields, SENSITIVE_FIELD))
    listing = at_listing(product)["sensitive-consent"]
    assert listing.outcome is Outcome.FAIL
    assert listing.evidence == {
        "contains_sensitive_personal_info": True,
        "separate_consent_for_sensitive": False,
        "sensitive_fields": ["health_condition"],
    }
    assert at_trade(product)["sensitive-consent"].outcome is Outcome.FAIL


def test_sensitive_field_alone_needs_separate_consent() -> None:
    product = product_with(fields=(*PRODUCT.fields, SENSITIVE_FIELD))
    assert at_listing(product)["sensitive-consent"].outcome is Outcome.FAIL


def test_sensitive_pi_with_separate_consent_passes() -> None:
    product = product_with(
        contains_sensitive_personal_info=True,
        separate_consent_for_sensitive=True,
        fields=(*PRODUCT.fields, SENSITIVE_FIELD),
    )
    assert at_listing(product)["sensitive-consent"].outcome is Outcome.PASS
    assert at_trade(product)["sensitive-consent"].outcome is Outcome.PASS


# --- repeated evaluation ---------------------------------------------------------------------------------------


def test_repeated_trades_give_the_same_findings_and_changed_facts_are_judged_afresh() -> None:
    rule = PersonalInformationStandard()
    first = at_trade(rule=rule)
    assert at_trade(rule=rule) == first
    assert at_trade(rule=rule, **scenario("precision_marketing"))["scenario-within-consent"].outcome is Outcome.FAIL
    assert at_trade(excess_product(), rule)["field-minimality"].outcome is Outcome.FAIL
    assert at_trade(rule=rule) == first
