"""S10 — GB/T 37988-2019 DSMM: the assessed level is recorded and high enough for the grade an
organisation declares (admission) or a provider lists (listing)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from marketplace.compliance.contract import Finding, Outcome, Stage
from marketplace.compliance.snapshots import OrganizationFacts, ProductFacts, Snapshot
from rules.s10_security_maturity import SecurityMaturityStandard
from tests.rules.snapshots import (
    BUYER,
    INTERMEDIARY,
    PRODUCT,
    PROVIDER,
    admission_snapshot,
    by_check,
    context,
    listing_snapshot,
    replace,
    trade_snapshot,
)

RULE = SecurityMaturityStandard()


def admission(rule: SecurityMaturityStandard = RULE, **changes: Any) -> dict[str, Finding]:
    org = replace(PROVIDER, status="pending", **changes)
    return by_check(rule.evaluate(context(Stage.ADMISSION, admission_snapshot(org))))


def admit(org: OrganizationFacts, rule: SecurityMaturityStandard = RULE) -> dict[str, Finding]:
    return by_check(rule.evaluate(context(Stage.ADMISSION, Snapshot(organization=org))))


def listing(
    rule: SecurityMaturityStandard = RULE,
    provider: OrganizationFacts | None = None,
    product: ProductFacts | None = None,
) -> dict[str, Finding]:
    return by_check(rule.evaluate(context(Stage.LISTING, listing_snapshot(product=product, provider=provider))))


def test_declarations() -> None:
    assert RULE.id == "S10"
    assert RULE.stages == frozenset({Stage.ADMISSION, Stage.LISTING})
    assert RULE.parameters == {
        "required_level_by_grade": {"general": 2, "important": 3, "core": 4},
        "min_level_buyer": 1,
    }
    assert "GB/T 37988-2019 §5.3" in RULE.basis


def test_other_stages_yield_nothing() -> None:
    assert RULE.evaluate(context(Stage.TRADE, trade_snapshot())) == []


@pytest.mark.parametrize(
    "params",
    [
        {"required_level_by_grade": {"secret": 5}},
        {"required_level_by_grade": {"core": 6}},
        {"required_level_by_grade": {"core": True}},
        {"min_level_buyer": -1},
    ],
)
def test_bad_parameters_are_refused(params: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="S10"):
        SecurityMaturityStandard(params)


# --- admission ------------------------------------------------------------------------------


def test_admission_passes_for_the_realistic_provider() -> None:
    findings = admission()
    assert set(findings) == {"S10.level-recorded", "S10.level-for-declared-grade"}
    assert all(f.outcome is Outcome.PASS for f in findings.values())
    declared = findings["S10.level-for-declared-grade"].evidence
    assert declared["dsmm_level"] == 3
    assert declared["max_data_grade"] == "important"
    assert declared["required_level"] == 3
    assert declared["kind"] == "provider"
    for finding in findings.values():
        json.dumps(finding.as_json())


def test_admission_passes_for_the_realistic_intermediary() -> None:
    findings = admit(replace(INTERMEDIARY, status="pending"))
    assert findings["S10.level-for-declared-grade"].outcome is Outcome.PASS
    assert findings["S10.level-for-declared-grade"].evidence["required_level"] == 2


@pytest.mark.parametrize(("grade", "level"), [("general", 1), ("important", 2), ("core", 3)])
def test_provider_below_the_level_for_its_declared_grade_is_not_admitted(grade: str, level: int) -> None:
    finding = admission(dsmm_level=level, max_data_grade=grade)["S10.level-for-declared-grade"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["dsmm_level"] == level
    assert finding.evidence["required_level"] == level + 1
    assert finding.evidence["max_data_grade"] == grade


def test_intermediary_below_the_level_is_not_admitted() -> None:
    findings = admit(replace(INTERMEDIARY, status="pending", dsmm_level=3, max_data_grade="core"))
    assert findings["S10.level-for-declared-grade"].outcome is Outcome.FAIL
    assert findings["S10.level-for-declared-grade"].evidence["required_level"] == 4


@pytest.mark.parametrize("level", [-1, 6, 99])
def test_level_outside_the_model_fails(level: int) -> None:
    findings = admission(dsmm_level=level)
    assert findings["S10.level-recorded"].outcome is Outcome.FAIL
    assert findings["S10.level-recorded"].evidence["dsmm_level"] == level
    # An out-of-range level is not trusted for the comparison either.
    assert findings["S10.level-for-declared-grade"].outcome is Outcome.FAIL


def test_buyer_declaring_general_data_is_not_applicable() -> None:
    findings = admit(replace(BUYER, status="pending"))
    assert findings["S10.level-recorded"].outcome is Outcome.PASS
    finding = findings["S10.level-for-declared-grade"]
    assert finding.outcome is Outcome.NOT_APPLICABLE
    assert finding.evidence["max_data_grade"] == "general"
    assert finding.evidence["required_level"] is None


@pytest.mark.parametrize("grade", ["important", "core"])
def test_buyer_declaring_important_data_needs_the_buyer_minimum(grade: str) -> None:
    passing = admit(replace(BUYER, status="pending", max_data_grade=grade, dsmm_level=1))
    assert passing["S10.level-for-declared-grade"].outcome is Outcome.PASS
    assert passing["S10.level-for-declared-grade"].evidence["required_level"] == 1
    failing = admit(replace(BUYER, status="pending", max_data_grade=grade, dsmm_level=0))
    assert failing["S10.level-for-declared-grade"].outcome is Outcome.FAIL
    assert failing["S10.level-for-declared-grade"].evidence["dsmm_level"] == 0


def test_admission_fails_closed_without_an_organisation() -> None:
    findings = by_check(RULE.evaluate(context(Stage.ADMISSION, Snapshot())))
    assert set(findings) == {"S10.level-recorded", "S10.level-for-declared-grade"}
    assert all(f.outcome is Outcome.FAIL for f in findings.values())


def test_required_level_parameter_changes_the_admission_outcome() -> None:
    stricter = SecurityMaturityStandard({"required_level_by_grade": {"important": 4}})
    finding = admission(stricter)["S10.level-for-declared-grade"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["required_level"] == 4
    # A partial table keeps the defaults for the grades it does not name.
    general = admission(stricter, max_data_grade="general")["S10.level-for-declared-grade"]
    assert general.outcome is Outcome.PASS
    assert general.evidence["required_level"] == 2


def test_min_level_buyer_parameter_changes_the_outcome() -> None:
    buyer = replace(BUYER, status="pending", max_data_grade="important", dsmm_level=2)
    assert admit(buyer)["S10.level-for-declared-grade"].outcome is Outcome.PASS
    stricter = SecurityMaturityStandard({"min_level_buyer": 3})
    finding = admit(buyer, stricter)["S10.level-for-declared-grade"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["required_level"] == 3


# --- listing --------------------------------------------------------------------------------


def test_listing_passes_for_the_realistic_snapshot() -> None:
    findings = listing()
    assert set(findings) == {"S10.level-recorded", "S10.level-for-product-grade", "S10.grade-within-declaration"}
    assert all(f.outcome is Outcome.PASS for f in findings.values())
    level = findings["S10.level-for-product-grade"].evidence
    assert level["dsmm_level"] == 3
    assert level["product_grade"] == "general"
    assert level["required_level"] == 2
    within = findings["S10.grade-within-declaration"].evidence
    assert within == {"organization_id": PROVIDER.id, "product_grade": "general", "max_data_grade": "important"}
    for finding in findings.values():
        json.dumps(finding.as_json())


def test_provider_level_below_the_product_grade_fails() -> None:
    findings = listing(provider=replace(PROVIDER, dsmm_level=1))
    finding = findings["S10.level-for-product-grade"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["dsmm_level"] == 1
    assert finding.evidence["required_level"] == 2


def test_important_product_needs_level_three() -> None:
    product = replace(PRODUCT, grade="important")
    assert listing(product=product)["S10.level-for-product-grade"].outcome is Outcome.PASS
    finding = listing(product=product, provider=replace(PROVIDER, dsmm_level=2))["S10.level-for-product-grade"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["required_level"] == 3


def test_product_grade_above_the_declared_maximum_fails() -> None:
    findings = listing(product=replace(PRODUCT, grade="core"), provider=replace(PROVIDER, dsmm_level=4))
    assert findings["S10.level-for-product-grade"].outcome is Outcome.PASS
    finding = findings["S10.grade-within-declaration"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["product_grade"] == "core"
    assert finding.evidence["max_data_grade"] == "important"


def test_ungraded_product_fails_both_grade_checks() -> None:
    findings = listing(product=replace(PRODUCT, grade=None))
    assert findings["S10.level-for-product-grade"].outcome is Outcome.FAIL
    assert findings["S10.level-for-product-grade"].evidence["required_level"] is None
    assert findings["S10.grade-within-declaration"].outcome is Outcome.FAIL


def test_a_product_grade_outside_the_vocabulary_fails_both_grade_checks() -> None:
    findings = listing(product=replace(PRODUCT, grade="secret"))
    level = findings["S10.level-for-product-grade"]
    assert level.outcome is Outcome.FAIL
    assert level.evidence == {**level.evidence, "product_grade": "secret", "required_level": None}
    assert findings["S10.grade-within-declaration"].outcome is Outcome.FAIL


def test_listing_level_outside_the_model_fails() -> None:
    findings = listing(provider=replace(PROVIDER, dsmm_level=7))
    assert findings["S10.level-recorded"].outcome is Outcome.FAIL
    assert findings["S10.level-for-product-grade"].outcome is Outcome.FAIL


def test_listing_fails_closed_without_provider_or_product() -> None:
    no_provider = by_check(RULE.evaluate(context(Stage.LISTING, Snapshot(product=PRODUCT))))
    assert all(f.outcome is Outcome.FAIL for f in no_provider.values())
    assert len(no_provider) == 3
    no_product = by_check(RULE.evaluate(context(Stage.LISTING, Snapshot(provider=PROVIDER))))
    assert no_product["S10.level-recorded"].outcome is Outcome.PASS
    assert no_product["S10.level-for-product-grade"].outcome is Outcome.FAIL
    assert no_product["S10.grade-within-declaration"].outcome is Outcome.FAIL


def test_required_level_parameter_changes_the_listing_outcome() -> None:
    stricter = SecurityMaturityStandard({"required_level_by_grade": {"general": 4}})
    finding = listing(stricter)["S10.level-for-product-grade"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["required_level"] == 4
