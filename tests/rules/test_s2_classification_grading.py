"""S2 — GB/T 43697-2024 data classification and grading: category, grade, PI flags agreeing
with the field schema, and a grade no lower than sensitive PI implies."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest

from marketplace.compliance.contract import Finding, Outcome, Stage
from marketplace.compliance.rulebook import build_rulebook
from marketplace.compliance.snapshots import FieldSpec, ProductFacts, Snapshot
from rules.s2_classification_grading import ClassificationGradingStandard
from tests.rules.snapshots import PRODUCT, admission_snapshot, context, listing_snapshot, replace, trade_snapshot

RULE = ClassificationGradingStandard()
CHECKS = [
    "S2.category",
    "S2.grade",
    "S2.personal-info-flag",
    "S2.sensitive-info-flag",
    "S2.sensitive-implies-personal",
    "S2.grade-floor",
]
SENSITIVE_FIELD = FieldSpec(name="health_condition", personal=True, sensitive=True, purposes=("traffic_planning",))


def listing(product: ProductFacts, rule: ClassificationGradingStandard = RULE) -> dict[str, Finding]:
    findings = rule.evaluate(context(Stage.LISTING, listing_snapshot(product=product)))
    assert [f.check for f in findings] == CHECKS
    for finding in findings:
        json.dumps(finding.as_json())
    return {f.check.removeprefix("S2."): f for f in findings}


def product_with(**changes: Any) -> ProductFacts:
    return replace(PRODUCT, **changes)


def with_sensitive_pi(**changes: Any) -> ProductFacts:
    return product_with(contains_sensitive_personal_info=True, fields=(*PRODUCT.fields, SENSITIVE_FIELD), **changes)


def test_declarations() -> None:
    module = importlib.import_module("rules.s2_classification_grading")
    assert module.ClassificationGradingStandard is ClassificationGradingStandard
    assert RULE.id == "S2"
    assert RULE.stages == frozenset({Stage.LISTING})
    assert set(RULE.parameters) == {"categories", "sensitive_pi_minimum_grade"}
    assert "transport" in RULE.parameters["categories"]
    assert any("GB/T 43697-2024" in b for b in RULE.basis)


def test_other_stages_yield_nothing() -> None:
    assert RULE.evaluate(context(Stage.TRADE, trade_snapshot())) == []
    assert RULE.evaluate(context(Stage.ADMISSION, admission_snapshot())) == []


def test_listing_passes_for_the_realistic_product() -> None:
    found = listing(PRODUCT)
    assert all(f.outcome is Outcome.PASS for f in found.values()), found
    assert found["category"].evidence["category"] == "transport"
    assert found["grade"].evidence["grade"] == "general"
    assert found["personal-info-flag"].evidence["personal_fields"] == ["age_band"]
    assert found["grade-floor"].evidence["implied_minimum"] == "general"


def test_no_product_fails_every_check() -> None:
    findings = RULE.evaluate(context(Stage.LISTING, Snapshot(provider=listing_snapshot().provider)))
    assert [f.check for f in findings] == CHECKS
    assert all(f.outcome is Outcome.FAIL for f in findings)


# --- category ------------------------------------------------------------------------------------


@pytest.mark.parametrize("category", [None, "", "  "])
def test_missing_category_fails(category: str | None) -> None:
    found = listing(product_with(category=category))["category"]
    assert found.outcome is Outcome.FAIL
    assert found.evidence["category"] == category


def test_unknown_category_fails() -> None:
    found = listing(product_with(category="astrology"))["category"]
    assert found.outcome is Outcome.FAIL
    assert found.evidence["category"] == "astrology"
    assert "transport" in found.evidence["allowed"]


# --- grade ---------------------------------------------------------------------------------------


def test_missing_grade_fails_and_the_floor_does_not_apply() -> None:
    found = listing(product_with(grade=None))
    assert found["grade"].outcome is Outcome.FAIL
    assert found["grade"].evidence["grade"] is None
    assert found["grade-floor"].outcome is Outcome.NOT_APPLICABLE


def test_grade_outside_the_three_levels_fails() -> None:
    # A snapshot built without validation (e.g. replayed from an older store) may carry anything.
    found = listing(PRODUCT.model_copy(update={"grade": "secret"}))
    assert found["grade"].outcome is Outcome.FAIL
    assert found["grade"].evidence["grade"] == "secret"
    assert found["grade-floor"].outcome is Outcome.NOT_APPLICABLE


# --- PI flags ------------------------------------------------------------------------------------


def test_personal_field_without_the_personal_flag_fails() -> None:
    found = listing(product_with(contains_personal_info=False))["personal-info-flag"]
    assert found.outcome is Outcome.FAIL
    assert found.evidence == {"contains_personal_info": False, "personal_fields": ["age_band"]}


def test_no_personal_field_and_no_flag_passes() -> None:
    fields = tuple(f for f in PRODUCT.fields if not f.personal)
    found = listing(product_with(contains_personal_info=False, fields=fields))
    assert found["personal-info-flag"].outcome is Outcome.PASS
    assert found["personal-info-flag"].evidence["personal_fields"] == []


def test_sensitive_field_without_the_sensitive_flag_fails() -> None:
    product = product_with(fields=(*PRODUCT.fields, SENSITIVE_FIELD))
    found = listing(product)["sensitive-info-flag"]
    assert found.outcome is Outcome.FAIL
    assert found.evidence == {"contains_sensitive_personal_info": False, "sensitive_fields": ["health_condition"]}


def test_sensitive_flag_without_personal_flag_fails() -> None:
    found = listing(with_sensitive_pi(contains_personal_info=False))["sensitive-implies-personal"]
    assert found.outcome is Outcome.FAIL
    assert found.evidence["contains_personal_info"] is False
    assert found.evidence["contains_sensitive_personal_info"] is True


def test_sensitive_field_not_marked_personal_fails() -> None:
    odd = FieldSpec(name="diagnosis", personal=False, sensitive=True, purposes=("traffic_planning",))
    product = product_with(contains_sensitive_personal_info=True, fields=(*PRODUCT.fields, odd), grade="important")
    found = listing(product)
    assert found["sensitive-implies-personal"].outcome is Outcome.FAIL
    assert found["sensitive-implies-personal"].evidence["sensitive_fields_not_personal"] == ["diagnosis"]
    assert found["sensitive-info-flag"].outcome is Outcome.PASS


# --- grade floor ---------------------------------------------------------------------------------


def test_sensitive_pi_graded_general_goes_to_review() -> None:
    found = listing(with_sensitive_pi())
    assert found["sensitive-info-flag"].outcome is Outcome.PASS
    floor = found["grade-floor"]
    assert floor.outcome is Outcome.REVIEW
    assert floor.evidence["grade"] == "general"
    assert floor.evidence["implied_minimum"] == "important"
    assert floor.evidence["sensitive_fields"] == ["health_condition"]


def test_sensitive_flag_alone_also_implies_the_floor() -> None:
    floor = listing(product_with(contains_sensitive_personal_info=True))["grade-floor"]
    assert floor.outcome is Outcome.REVIEW
    assert floor.evidence["sensitive_fields"] == []


def test_sensitive_pi_graded_important_passes() -> None:
    assert listing(with_sensitive_pi(grade="important"))["grade-floor"].outcome is Outcome.PASS


# --- parameters ----------------------------------------------------------------------------------


def test_categories_parameter_changes_the_outcome() -> None:
    rule = ClassificationGradingStandard({"categories": ["finance"]})
    found = listing(PRODUCT, rule)["category"]
    assert found.outcome is Outcome.FAIL
    assert found.evidence["allowed"] == ["finance"]
    assert (
        listing(product_with(category="astrology"), ClassificationGradingStandard({"categories": ["astrology"]}))[
            "category"
        ].outcome
        is Outcome.PASS
    )


@pytest.mark.parametrize(
    ("minimum", "grade", "outcome"),
    [
        ("general", "general", Outcome.PASS),  # the review is switched off
        ("important", "general", Outcome.REVIEW),
        ("core", "important", Outcome.REVIEW),
        ("core", "core", Outcome.PASS),
    ],
)
def test_sensitive_minimum_grade_parameter(minimum: str, grade: str, outcome: Outcome) -> None:
    config = {"rules": {"S2": {"parameters": {"sensitive_pi_minimum_grade": minimum}}}}
    active = build_rulebook({"S2": ClassificationGradingStandard}, config).get("S2")
    assert active is not None
    assert isinstance(active.rule, ClassificationGradingStandard)
    assert listing(with_sensitive_pi(grade=grade), active.rule)["grade-floor"].outcome is outcome


def test_unknown_minimum_grade_is_refused() -> None:
    with pytest.raises(ValueError, match="sensitive_pi_minimum_grade"):
        ClassificationGradingStandard({"sensitive_pi_minimum_grade": "secret"})
