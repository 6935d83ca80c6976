"""S7 — GB/T 4754-2017 industrial classification: the product's industry code is a known code,
and optionally a 4-digit class."""

from __future__ import annotations

import json

import pytest

from marketplace.compliance.contract import Finding, Outcome, Stage
from marketplace.compliance.snapshots import Snapshot
from rules.s7_industry_classification import IndustryClassificationStandard
from tests.rules.snapshots import PRODUCT, admission_snapshot, context, listing_snapshot, replace, trade_snapshot

RULE = IndustryClassificationStandard()


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, findings
    assert findings[0].check == "S7.industry-code"
    return findings[0]


def listing_with(code: str | None) -> Snapshot:
    return listing_snapshot(product=replace(PRODUCT, industry_code=code))


def test_declarations() -> None:
    assert RULE.id == "S7"
    assert RULE.stages == frozenset({Stage.LISTING})
    assert RULE.parameters == {"require_class_level": False}
    assert RULE.basis == ("GB/T 4754-2017",)


def test_other_stages_yield_nothing() -> None:
    assert RULE.evaluate(context(Stage.TRADE, trade_snapshot())) == []
    assert RULE.evaluate(context(Stage.ADMISSION, admission_snapshot())) == []


def test_listing_passes_for_the_realistic_snapshot() -> None:
    finding = only(RULE.evaluate(context(Stage.LISTING, listing_snapshot())))
    assert finding.outcome is Outcome.PASS
    assert finding.evidence["industry_code"] == "5431"
    assert finding.evidence["level"] == "class"
    assert finding.evidence["name_zh"] == "普通货物道路运输"
    assert finding.evidence["section"] == "G"
    json.dumps(finding.as_json())


@pytest.mark.parametrize(("declared", "code"), [(" 5431 ", "5431"), ("G5431", "5431"), ("g5431", "5431")])
def test_declared_code_is_normalised(declared: str, code: str) -> None:
    finding = only(RULE.evaluate(context(Stage.LISTING, listing_with(declared))))
    assert finding.outcome is Outcome.PASS
    assert finding.evidence["declared"] == declared
    assert finding.evidence["industry_code"] == code


@pytest.mark.parametrize(("code", "level"), [("G", "section"), ("54", "division"), ("543", "group")])
def test_coarser_levels_pass_by_default(code: str, level: str) -> None:
    finding = only(RULE.evaluate(context(Stage.LISTING, listing_with(code))))
    assert finding.outcome is Outcome.PASS
    assert finding.evidence["level"] == level


@pytest.mark.parametrize("code", [None, "", "   "])
def test_missing_code_fails(code: str | None) -> None:
    finding = only(RULE.evaluate(context(Stage.LISTING, listing_with(code))))
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["declared"] == code


@pytest.mark.parametrize("code", ["9999", "5430", "I5431", "54310", "X", "transport"])
def test_unknown_code_fails(code: str) -> None:
    finding = only(RULE.evaluate(context(Stage.LISTING, listing_with(code))))
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence == {"declared": code, "industry_code": None}


def test_listing_fails_closed_without_a_product() -> None:
    finding = only(RULE.evaluate(context(Stage.LISTING, Snapshot(provider=listing_snapshot().provider))))
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence == {"declared": None}


@pytest.mark.parametrize(
    ("code", "level", "name"), [("543", "group", "道路货物运输"), ("54", "division", "道路运输业")]
)
def test_require_class_level_sends_coarser_codes_to_review(code: str, level: str, name: str) -> None:
    rule = IndustryClassificationStandard({"require_class_level": True})
    snapshot = listing_with(code)
    assert only(RULE.evaluate(context(Stage.LISTING, snapshot))).outcome is Outcome.PASS
    finding = only(rule.evaluate(context(Stage.LISTING, snapshot)))
    assert finding.outcome is Outcome.REVIEW
    assert finding.evidence["industry_code"] == code
    assert finding.evidence["level"] == level
    assert finding.evidence["name_zh"] == name
    assert finding.evidence["require_class_level"] is True


def test_require_class_level_still_passes_a_class() -> None:
    rule = IndustryClassificationStandard({"require_class_level": True})
    assert only(rule.evaluate(context(Stage.LISTING, listing_snapshot()))).outcome is Outcome.PASS


def test_require_class_level_does_not_soften_an_unknown_code() -> None:
    rule = IndustryClassificationStandard({"require_class_level": True})
    assert only(rule.evaluate(context(Stage.LISTING, listing_with("9999")))).outcome is Outcome.FAIL


def test_no_not_applicable_outcome() -> None:
    # Every listed product must carry an industry code: the check always applies.
    outcomes = {
        only(RULE.evaluate(context(Stage.LISTING, listing_with(code)))).outcome for code in ("5431", None, "9999")
    }
    assert Outcome.NOT_APPLICABLE not in outcomes
