"""R6 data asset value evaluation: when a valuation is required, and what makes it acceptable."""

from __future__ import annotations

import json
from datetime import date
from importlib.metadata import EntryPoint

import pytest

from marketplace.compliance.contract import Finding, Outcome, Stage
from marketplace.compliance.registry import load_rule_classes
from marketplace.compliance.snapshots import Snapshot, Valuation
from rules.r6_asset_valuation import AssetValuationRule
from tests.rules.snapshots import (
    ASSESSOR_REPORT,
    PLAN,
    PRODUCT,
    context,
    listing_snapshot,
    replace,
    trade_snapshot,
)

CHECKS = ["valuation", "valuation-method", "valuation-assessor", "valuation-current", "valuation-value"]
EXPENSIVE = replace(PLAN, price_minor=150_000_000)  # CNY 1,500,000: above the default threshold
VALUATION = PRODUCT.valuation
assert VALUATION is not None


def run(snapshot: Snapshot, rule: AssetValuationRule | None = None) -> dict[str, Finding]:
    findings = (rule or AssetValuationRule()).evaluate(context(Stage.LISTING, snapshot))
    assert [f.check for f in findings] == [f"R6.{code}" for code in CHECKS]
    for finding in findings:
        assert finding.rule_id == "R6"
        assert finding.message
        json.dumps(finding.as_json())
    return {f.check.removeprefix("R6."): f for f in findings}


def listing(rule: AssetValuationRule | None = None, /, **product_changes: object) -> dict[str, Finding]:
    return run(listing_snapshot(replace(PRODUCT, **product_changes)), rule)


def required(**product_changes: object) -> dict[str, Finding]:
    """A product that needs a valuation because its plan costs CNY 1.5 million."""
    return listing(plans=(EXPENSIVE,), **product_changes)


def valuation(**changes: object) -> Valuation:
    assert VALUATION is not None
    return replace(VALUATION, **changes)


# --- declarations ------------------------------------------------------------------------------


def test_declarations_and_loading() -> None:
    point = EntryPoint(name="R6", value="rules.r6_asset_valuation:AssetValuationRule", group="marketplace.rules")
    assert load_rule_classes([point]) == {"R6": AssetValuationRule}
    assert AssetValuationRule.title_zh == "数据资产价值评估指引"
    assert AssetValuationRule.stages == frozenset({Stage.LISTING})
    assert AssetValuationRule.parameters == {
        "valuation_required_above_minor": 100_000_000,
        "valuation_max_age_days": 365,
    }


def test_other_stages_yield_nothing() -> None:
    assert AssetValuationRule().evaluate(context(Stage.TRADE, trade_snapshot())) == []


def test_invalid_parameter_is_refused() -> None:
    with pytest.raises(ValueError, match="valuation_required_above_minor"):
        AssetValuationRule({"valuation_required_above_minor": -1})


# --- not required ----------------------------------------------------------------------------------


def test_realistic_product_needs_no_valuation() -> None:
    found = listing()
    assert all(f.outcome is Outcome.NOT_APPLICABLE for f in found.values())
    evidence = found["valuation"].evidence
    assert evidence["reasons"] == []
    assert evidence["threshold_minor"] == 100_000_000
    assert evidence["declared_value_minor"] == 5_000_000
    assert evidence["max_plan_price_minor"] == 1_200_000
    assert evidence["exclusive"] is False


def test_no_valuation_and_cheap_product_is_not_applicable() -> None:
    found = listing(valuation=None)
    assert all(f.outcome is Outcome.NOT_APPLICABLE for f in found.values())
    assert found["valuation"].evidence["declared_value_minor"] is None


# --- required --------------------------------------------------------------------------------------


def test_required_by_plan_price_and_valuation_in_order_passes() -> None:
    found = required()
    assert all(f.outcome is Outcome.PASS for f in found.values()), found
    assert found["valuation"].evidence["reasons"] == ["plan_price_above_threshold"]
    assert found["valuation-method"].evidence["method"] == "cost"
    assert found["valuation-assessor"].evidence == {"assessor_id": "org-assessor", "assessor_admitted": True}
    assert found["valuation-current"].evidence["expires_on"] == "2027-03-01"
    assert found["valuation-current"].evidence["evaluated_on"] == "2026-11-22"
    assert found["valuation-value"].evidence == {
        "value_minor": 5_000_000,
        "currency": "CNY",
        "plan_currencies": ["CNY"],
    }


def test_required_by_declared_value() -> None:
    found = listing(valuation=valuation(value_minor=200_000_000))
    assert found["valuation"].outcome is Outcome.PASS
    assert found["valuation"].evidence["reasons"] == ["declared_value_above_threshold"]


def test_required_by_exclusive_licence() -> None:
    assert PRODUCT.licence is not None
    exclusive = replace(PRODUCT.licence, exclusive=True)
    found = listing(licence=exclusive)
    assert found["valuation"].outcome is Outcome.PASS
    assert found["valuation"].evidence["reasons"] == ["exclusive_licence"]
    missing = listing(licence=exclusive, valuation=None)
    assert missing["valuation"].outcome is Outcome.FAIL
    assert {f.follows_from for name, f in missing.items() if name != "valuation"} == {"R6.valuation"}


def test_required_but_missing_fails_once_and_the_other_checks_follow() -> None:
    found = required(valuation=None)
    assert [name for name, f in found.items() if f.outcome is Outcome.FAIL] == ["valuation"]
    assert all(f.outcome is Outcome.NOT_APPLICABLE for name, f in found.items() if name != "valuation")
    assert {f.follows_from for name, f in found.items() if name != "valuation"} == {"R6.valuation"}
    assert found["valuation"].evidence["reasons"] == ["plan_price_above_threshold"]
    assert found["valuation"].evidence["max_plan_price_minor"] == 150_000_000


def test_missing_product_fails_closed() -> None:
    found = run(Snapshot())
    assert all(f.outcome is Outcome.FAIL for f in found.values())
    assert found["valuation"].evidence == {"missing": ["product"]}


def test_unknown_method_fails() -> None:
    assert VALUATION is not None
    # A method outside the three cannot be validated into a snapshot; build it unchecked.
    odd = Valuation.model_construct(
        method="gut_feeling",  # type: ignore[arg-type]
        value_minor=5_000_000,
        currency="CNY",
        assessment=ASSESSOR_REPORT,
    )
    found = required(valuation=odd)
    assert found["valuation-method"].outcome is Outcome.FAIL
    assert found["valuation-method"].evidence["method"] == "gut_feeling"


def test_assessor_not_admitted_fails() -> None:
    report = replace(ASSESSOR_REPORT, assessor_admitted=False)
    found = required(valuation=valuation(assessment=report))
    assert found["valuation-assessor"].outcome is Outcome.FAIL
    assert found["valuation-assessor"].evidence["assessor_admitted"] is False


@pytest.mark.parametrize(
    ("issued_on", "valid_until", "outcome", "expires_on"),
    [
        (date(2025, 11, 1), date(2026, 11, 21), Outcome.FAIL, "2026-11-21"),  # expired yesterday
        (date(2025, 11, 1), date(2026, 11, 22), Outcome.PASS, "2026-11-22"),  # last valid day
        (date(2025, 11, 1), None, Outcome.FAIL, "2026-11-01"),  # no end stated, older than a year
        (date(2026, 3, 1), None, Outcome.PASS, "2027-03-01"),  # no end stated, recent
        (date(2026, 12, 1), date(2027, 12, 1), Outcome.FAIL, "2027-12-01"),  # dated in the future
    ],
)
def test_valuation_currency_in_time(
    issued_on: date, valid_until: date | None, outcome: Outcome, expires_on: str
) -> None:
    report = replace(ASSESSOR_REPORT, issued_on=issued_on, valid_until=valid_until)
    finding = required(valuation=valuation(assessment=report))["valuation-current"]
    assert finding.outcome is outcome
    assert finding.evidence["expires_on"] == expires_on
    assert finding.evidence["issued_on"] == issued_on.isoformat()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"value_minor": 0}, "not positive"),
        ({"value_minor": -5}, "not positive"),
        ({"currency": "USD"}, "currency of the plans"),
        ({"currency": "RMB"}, "ISO 4217"),
    ],
)
def test_valuation_value_fails(changes: dict[str, object], message: str) -> None:
    finding = required(valuation=valuation(**changes))["valuation-value"]
    assert finding.outcome is Outcome.FAIL
    assert message in finding.message
    for key, value in changes.items():
        assert finding.evidence["value_minor" if key == "value_minor" else "currency"] == value


# --- parameters ----------------------------------------------------------------------------------


def test_lower_threshold_requires_a_valuation() -> None:
    low = AssetValuationRule({"valuation_required_above_minor": 1_000_000})
    found = listing(low)
    assert found["valuation"].outcome is Outcome.PASS
    assert found["valuation"].evidence["reasons"] == ["declared_value_above_threshold", "plan_price_above_threshold"]
    missing = listing(low, valuation=None)
    assert missing["valuation"].outcome is Outcome.FAIL


def test_shorter_max_age_expires_a_valuation_without_end_date() -> None:
    report = replace(ASSESSOR_REPORT, valid_until=None)
    product_changes = {"plans": (EXPENSIVE,), "valuation": valuation(assessment=report)}
    assert listing(**product_changes)["valuation-current"].outcome is Outcome.PASS
    short = AssetValuationRule({"valuation_max_age_days": 90})
    finding = listing(short, **product_changes)["valuation-current"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["max_age_days"] == 90
    assert finding.evidence["expires_on"] == "2026-05-30"
