"""S5 — GB/T 36344-2018 data quality indicators: six declared indicators in [0, 1],
completeness re-measured on the sample, declared-vs-measured and indicator floors."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest

from marketplace.compliance.contract import Finding, Outcome, Stage
from marketplace.compliance.rulebook import build_rulebook
from marketplace.compliance.snapshots import ProductFacts, QualityIndicators, SampleFacts, Snapshot
from rules.s5_data_quality import DataQualityStandard, measure_completeness
from tests.rules.snapshots import PRODUCT, admission_snapshot, context, listing_snapshot, replace, trade_snapshot

RULE = DataQualityStandard()
CHECKS = ["S5.indicators-declared", "S5.completeness-measured", "S5.completeness-declared", "S5.indicator-floor"]
assert PRODUCT.sample is not None
assert PRODUCT.quality is not None
SAMPLE = PRODUCT.sample
QUALITY = PRODUCT.quality


def at_listing(product: ProductFacts, rule: DataQualityStandard = RULE) -> dict[str, Finding]:
    findings = rule.evaluate(context(Stage.LISTING, listing_snapshot(product=product)))
    assert [f.check for f in findings] == CHECKS
    for finding in findings:
        json.dumps(finding.as_json(), allow_nan=False)
    return {f.check.removeprefix("S5."): f for f in findings}


def quality(**changes: Any) -> ProductFacts:
    return replace(PRODUCT, quality=replace(QUALITY, **changes))


def rows(*values: tuple[str | None, ...], **quality_changes: Any) -> ProductFacts:
    product = replace(PRODUCT, sample=replace(SAMPLE, rows=values))
    return replace(product, quality=replace(QUALITY, **quality_changes)) if quality_changes else product


FULL = ("GY-0001", "2026-10-01T08:00:00+08:00", "32.5", "118", "30-39")


def test_declarations() -> None:
    module = importlib.import_module("rules.s5_data_quality")
    assert module.DataQualityStandard is DataQualityStandard
    assert RULE.id == "S5"
    assert RULE.stages == frozenset({Stage.LISTING})
    assert RULE.parameters == {"min_completeness": 0.8, "completeness_tolerance": 0.05, "min_indicator": 0.6}
    assert any("GB/T 36344-2018" in b for b in RULE.basis)


def test_other_stages_yield_nothing() -> None:
    assert RULE.evaluate(context(Stage.TRADE, trade_snapshot())) == []
    assert RULE.evaluate(context(Stage.ADMISSION, admission_snapshot())) == []


# --- pass ------------------------------------------------------------------------------------------------


def test_realistic_product_passes() -> None:
    found = at_listing(PRODUCT)
    assert all(f.outcome is Outcome.PASS for f in found.values()), found
    assert found["indicators-declared"].evidence["declared"]["completeness"] == 0.97
    measured = found["completeness-measured"].evidence
    assert (measured["measured"], measured["rows"], measured["cells"], measured["filled_cells"]) == (0.95, 4, 20, 19)
    assert found["completeness-declared"].evidence["excess"] == pytest.approx(0.02)
    assert found["indicator-floor"].evidence["below_floor"] == {}


# --- indicators declared ---------------------------------------------------------------------------------


def test_no_indicators_fails_and_the_comparisons_do_not_apply() -> None:
    found = at_listing(replace(PRODUCT, quality=None))
    assert found["indicators-declared"].outcome is Outcome.FAIL
    assert found["indicators-declared"].evidence["missing"] == [
        "normativity",
        "completeness",
        "accuracy",
        "consistency",
        "timeliness",
        "accessibility",
    ]
    assert found["completeness-measured"].outcome is Outcome.PASS
    assert found["completeness-declared"].outcome is Outcome.NOT_APPLICABLE
    assert found["indicator-floor"].outcome is Outcome.NOT_APPLICABLE


@pytest.mark.parametrize(("name", "value"), [("accuracy", 1.2), ("timeliness", -0.1)])
def test_indicator_outside_the_unit_interval_fails(name: str, value: float) -> None:
    found = at_listing(quality(**{name: value}))["indicators-declared"]
    assert found.outcome is Outcome.FAIL
    assert found.evidence["out_of_range"] == {name: value}


def test_indicator_that_is_not_a_number_fails() -> None:
    found = at_listing(quality(consistency=float("nan")))["indicators-declared"]
    assert found.outcome is Outcome.FAIL
    assert found.evidence["not_numbers"] == ["consistency"]
    assert "consistency" not in found.evidence["declared"]


# --- completeness re-measured ------------------------------------------------------------------------------


def test_low_measured_completeness_fails_and_the_claim_goes_to_review() -> None:
    product = rows(FULL, ("GY-0002", None, "", "  ", None), ("GY-0003", None, None, None, None))
    found = at_listing(product)
    measured = found["completeness-measured"]
    assert measured.outcome is Outcome.FAIL
    assert measured.evidence["measured"] == pytest.approx(7 / 15, abs=1e-4)
    assert (measured.evidence["rows"], measured.evidence["cells"], measured.evidence["filled_cells"]) == (3, 15, 7)
    assert found["completeness-declared"].outcome is Outcome.REVIEW


def test_short_rows_count_their_missing_cells_as_empty() -> None:
    product = rows(FULL, ("GY-0002", "t", "1"))
    measured = at_listing(product)["completeness-measured"].evidence
    assert (measured["cells"], measured["filled_cells"]) == (10, 8)
    assert measure_completeness(replace(SAMPLE, rows=(FULL, ("GY-0002", "t", "1")))) == (0.8, 2, 10, 8)


@pytest.mark.parametrize("sample", [None, replace(SAMPLE, rows=())])
def test_no_sample_rows_fails_the_measure(sample: SampleFacts | None) -> None:
    found = at_listing(replace(PRODUCT, sample=sample))
    assert found["completeness-measured"].outcome is Outcome.FAIL
    assert found["completeness-measured"].evidence["rows"] == 0
    assert found["completeness-declared"].outcome is Outcome.NOT_APPLICABLE
    assert found["completeness-declared"].evidence["measured"] is None


def test_sample_rows_without_cells_fail_the_measure() -> None:
    product = replace(PRODUCT, sample=SampleFacts(sha256="c" * 64, rows_total=1, columns=(), rows=((),)))
    assert at_listing(product)["completeness-measured"].outcome is Outcome.FAIL


def test_no_product_fails_every_check() -> None:
    findings = RULE.evaluate(context(Stage.LISTING, Snapshot()))
    assert [f.check for f in findings] == CHECKS
    assert all(f.outcome is Outcome.FAIL for f in findings)


# --- declared vs measured ------------------------------------------------------------------------------------


def overclaimed() -> ProductFacts:
    # 17 of 20 cells filled: 0.85 measured (above the floor) against 0.97 declared.
    return rows(
        FULL,
        ("GY-0002", "t", "1", None, None),
        ("GY-0003", "t", "1", "1", None),
        FULL,
    )


def test_declared_completeness_above_the_measured_goes_to_review() -> None:
    found = at_listing(overclaimed())
    assert found["completeness-measured"].outcome is Outcome.PASS
    assert found["completeness-measured"].evidence["measured"] == 0.85
    claim = found["completeness-declared"]
    assert claim.outcome is Outcome.REVIEW
    assert claim.evidence["declared"] == 0.97
    assert claim.evidence["measured"] == 0.85
    assert claim.evidence["excess"] == pytest.approx(0.12)


def test_declared_completeness_below_the_measured_passes() -> None:
    assert at_listing(quality(completeness=0.7))["completeness-declared"].outcome is Outcome.PASS


# --- indicator floor -------------------------------------------------------------------------------------------


def test_indicator_below_the_floor_goes_to_review() -> None:
    found = at_listing(quality(timeliness=0.5, accessibility=0.55))["indicator-floor"]
    assert found.outcome is Outcome.REVIEW
    assert found.evidence == {"min_indicator": 0.6, "below_floor": {"timeliness": 0.5, "accessibility": 0.55}}


# --- parameters --------------------------------------------------------------------------------------------------


def test_parameters_change_the_outcome() -> None:
    config = {
        "rules": {"S5": {"parameters": {"min_completeness": 0.99, "completeness_tolerance": 0.2, "min_indicator": 0.4}}}
    }
    active = build_rulebook({"S5": DataQualityStandard}, config).get("S5")
    assert active is not None
    rule = active.rule
    assert isinstance(rule, DataQualityStandard)
    # A tighter floor fails the realistic sample (0.95 measured).
    measured = at_listing(PRODUCT, rule)["completeness-measured"]
    assert measured.outcome is Outcome.FAIL
    assert measured.evidence["min_completeness"] == 0.99
    # A wider tolerance accepts the over-claim, a lower floor the weak indicator.
    assert at_listing(overclaimed(), rule)["completeness-declared"].outcome is Outcome.PASS
    assert at_listing(quality(timeliness=0.5), rule)["indicator-floor"].outcome is Outcome.PASS


def test_integer_parameters_are_accepted() -> None:
    rule = DataQualityStandard({"min_completeness": 1, "min_indicator": 0})
    assert at_listing(PRODUCT, rule)["completeness-measured"].outcome is Outcome.FAIL
    assert at_listing(quality(timeliness=0.0), rule)["indicator-floor"].outcome is Outcome.PASS


def test_quality_model_has_the_six_indicators() -> None:
    assert set(QualityIndicators.model_fields) == {
        "normativity",
        "completeness",
        "accuracy",
        "consistency",
        "timeliness",
        "accessibility",
    }
