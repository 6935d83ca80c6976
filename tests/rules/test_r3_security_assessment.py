"""R3 — security assessment: grade, core data, risk assessment, PI protection, delivery mode per
grade and for sensitive PI, outbound transfer to a buyer abroad."""

from __future__ import annotations

import json
from datetime import date

import pytest

from marketplace.compliance.contract import Finding, Outcome, Stage
from marketplace.compliance.rulebook import build_rulebook
from marketplace.compliance.snapshots import Assessment, ComputationFacts, MeasureBounds, ProductFacts, Snapshot
from rules.r3_security_assessment import SecurityAssessmentRule
from tests.rules.snapshots import (
    ASSESSOR_REPORT,
    BUYER,
    DELIVERY,
    NOW,
    PRODUCT,
    PROVIDER,
    TRADE,
    admission_snapshot,
    by_check,
    context,
    delivery_snapshot,
    listing_snapshot,
    replace,
    settlement_snapshot,
    trade_snapshot,
)

RULE = SecurityAssessmentRule()

CHECKS = {
    "R3.grade-set",
    "R3.core-data",
    "R3.risk-assessment",
    "R3.pi-protection",
    "R3.delivery-mode",
    "R3.sensitive-pi-delivery",
    "R3.cross-border",
    "R3.privacy-computing",
}
STAGES = (Stage.LISTING, Stage.TRADE, Stage.DELIVERY)
NO_PI = {"contains_personal_info": False, "contains_sensitive_personal_info": False}
FOREIGN = replace(BUYER, jurisdiction="SG")
PRIVATE_TERMS = ComputationFacts(
    group_by=("district",),
    measure=("amount",),
    epsilon_per_query=0.5,
    epsilon_budget=5.0,
    bounds={"amount": MeasureBounds(lower=0, upper=5000)},
)


def snapshot_for(stage: Stage, **parts: object) -> Snapshot:
    if stage is Stage.LISTING:
        return listing_snapshot(**parts)  # type: ignore[arg-type]
    if stage is Stage.TRADE:
        return trade_snapshot(**parts)
    return delivery_snapshot(**parts)


def run(stage: Stage, rule: SecurityAssessmentRule = RULE, /, **parts: object) -> dict[str, Finding]:
    return by_check(rule.evaluate(context(stage, snapshot_for(stage, **parts))))


def product(**changes: object) -> ProductFacts:
    return replace(PRODUCT, **changes)


def assessment(**changes: object) -> Assessment:
    return replace(ASSESSOR_REPORT, **changes)


def test_declarations() -> None:
    assert RULE.id == "R3"
    assert RULE.title_zh == "数据交易安全评估指南"
    assert RULE.title_en == "Security assessment guidelines"
    assert RULE.version == "1.0.0"
    assert RULE.stages == frozenset(STAGES)
    assert RULE.parameters["allowed_delivery_modes"] == {
        "general": ["file", "api", "privacy_computing"],
        "important": ["api", "privacy_computing"],
        "core": [],
    }
    assert RULE.parameters["sensitive_pi_delivery_modes"] == ["api", "privacy_computing"]
    assert "DSL Art. 21" in RULE.basis


def test_other_stages_yield_nothing() -> None:
    assert RULE.evaluate(context(Stage.ADMISSION, admission_snapshot())) == []
    assert RULE.evaluate(context(Stage.SETTLEMENT, settlement_snapshot())) == []


# --- pass ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_realistic_snapshot_passes(stage: Stage) -> None:
    findings = run(stage)
    assert set(findings) == CHECKS
    not_applicable = {"R3.risk-assessment", "R3.sensitive-pi-delivery", "R3.cross-border", "R3.privacy-computing"}
    for check in CHECKS - not_applicable:
        assert findings[check].outcome is Outcome.PASS, findings[check]
    for check in not_applicable:
        assert findings[check].outcome is Outcome.NOT_APPLICABLE, findings[check]
    assert findings["R3.grade-set"].evidence == {"grade": "general"}
    assert findings["R3.core-data"].evidence == {"grade": "general", "stage": stage.value}
    assert findings["R3.pi-protection"].evidence["deidentification_techniques"] == ["generalisation", "k-anonymity"]
    mode = findings["R3.delivery-mode"].evidence
    assert mode["modes"] == (["file", "api"] if stage is Stage.LISTING else ["api"])
    assert mode["allowed"] == ["api", "file", "privacy_computing"]
    assert mode["not_allowed"] == []
    for finding in findings.values():
        json.dumps(finding.as_json())


def test_important_data_with_everything_on_file_passes_abroad() -> None:
    important = product(
        grade="important",
        delivery_modes=("api", "privacy_computing"),
        computation=PRIVATE_TERMS,
        risk_assessment=ASSESSOR_REPORT,
        cross_border_assessment=assessment(assessor_id="cac", assessor_admitted=False, valid_until=None),
    )
    for stage in STAGES:
        findings = run(stage, product=important, **({} if stage is Stage.LISTING else {"buyer": FOREIGN}))
        failing = {c: f.outcome for c, f in findings.items() if f.outcome in (Outcome.FAIL, Outcome.REVIEW)}
        assert failing == {}, stage
    cross = run(Stage.TRADE, product=important, buyer=FOREIGN)["R3.cross-border"]
    assert cross.outcome is Outcome.PASS
    assert cross.evidence["required_because"] == ["grade_important", "personal_information"]
    assert cross.evidence["valid_until"] == "2029-03-01"  # issued 2026-03-01, 36 months by default


# --- grade and core data -------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_no_grade_fails_closed(stage: Stage) -> None:
    findings = run(stage, product=product(grade=None))
    for check in ("R3.grade-set", "R3.core-data", "R3.risk-assessment", "R3.delivery-mode"):
        assert findings[check].outcome is Outcome.FAIL, check
    assert findings["R3.grade-set"].evidence == {"grade": None}
    assert findings["R3.risk-assessment"].evidence == {"grade": None, "report": None}
    assert findings["R3.delivery-mode"].evidence["allowed"] == []


@pytest.mark.parametrize("stage", STAGES)
def test_a_grade_outside_the_vocabulary_fails_closed(stage: Stage) -> None:
    """A grade the request schema lets through for S2 to judge is no grade to R3."""
    findings = run(stage, product=product(grade="secret"))
    for check in ("R3.grade-set", "R3.core-data", "R3.risk-assessment", "R3.delivery-mode"):
        assert findings[check].outcome is Outcome.FAIL, check
    assert findings["R3.grade-set"].evidence == {"grade": "secret"}
    assert "'secret' is not general, important or core" in findings["R3.grade-set"].message
    assert findings["R3.delivery-mode"].evidence["allowed"] == []


@pytest.mark.parametrize("stage", STAGES)
def test_core_data_is_never_listed_traded_or_delivered(stage: Stage) -> None:
    core = product(grade="core", risk_assessment=ASSESSOR_REPORT)
    findings = run(stage, product=core)
    finding = findings["R3.core-data"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence == {"grade": "core", "stage": stage.value}
    assert findings["R3.delivery-mode"].outcome is Outcome.FAIL
    assert findings["R3.delivery-mode"].evidence["allowed"] == []


def test_licence_sold_before_the_product_was_graded_core_is_not_delivered() -> None:
    sold = run(Stage.TRADE)
    assert sold["R3.core-data"].outcome is Outcome.PASS
    regraded = product(grade="core")
    delivery = run(Stage.DELIVERY, product=regraded)
    assert delivery["R3.core-data"].outcome is Outcome.FAIL
    assert delivery["R3.core-data"].evidence["stage"] == "delivery"


# --- risk assessment -----------------------------------------------------------------------


def test_risk_assessment_not_applicable_to_general_data() -> None:
    finding = run(Stage.LISTING)["R3.risk-assessment"]
    assert finding.outcome is Outcome.NOT_APPLICABLE
    assert finding.evidence == {"grade": "general"}


def test_important_data_without_risk_assessment_fails() -> None:
    finding = run(Stage.TRADE, product=product(grade="important"))["R3.risk-assessment"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence == {"grade": "important", "report": None}


@pytest.mark.parametrize(
    ("report", "fragment"),
    [
        (assessment(valid_until=date(2026, 11, 21)), "expired"),
        (assessment(issued_on=date(2026, 12, 1)), "future"),
        (assessment(assessor_admitted=False), "admitted"),
        (assessment(issued_on=date(2025, 11, 1), valid_until=None), "expired"),
    ],
    ids=["expired", "future", "not-admitted", "undated-too-old"],
)
def test_important_data_with_an_invalid_risk_assessment_fails(report: Assessment, fragment: str) -> None:
    finding = run(Stage.DELIVERY, product=product(grade="important", risk_assessment=report))["R3.risk-assessment"]
    assert finding.outcome is Outcome.FAIL
    assert fragment in finding.message
    assert finding.evidence["grade"] == "important"
    assert finding.evidence["checked_on"] == "2026-11-22"


def test_important_data_with_valid_risk_assessment_passes() -> None:
    finding = run(Stage.LISTING, product=product(grade="important", risk_assessment=ASSESSOR_REPORT))[
        "R3.risk-assessment"
    ]
    assert finding.outcome is Outcome.PASS
    assert finding.evidence["valid_until"] == "2027-03-01"
    assert finding.evidence["expiry_stated"] is True


# --- personal information ------------------------------------------------------------------


def test_pi_protection_not_applicable_without_pi() -> None:
    finding = run(Stage.LISTING, product=product(**NO_PI))["R3.pi-protection"]
    assert finding.outcome is Outcome.NOT_APPLICABLE
    assert finding.evidence == {"contains_personal_info": False}


def test_pi_neither_deidentified_nor_consented_fails() -> None:
    finding = run(Stage.TRADE, product=product(deidentification_techniques=()))["R3.pi-protection"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["deidentification_techniques"] == []
    assert finding.evidence["sold_under_consent"] is False


def test_pi_sold_under_consent_passes() -> None:
    finding = run(Stage.TRADE, product=product(deidentification_techniques=(), sold_under_consent=True))[
        "R3.pi-protection"
    ]
    assert finding.outcome is Outcome.PASS
    assert finding.evidence["sold_under_consent"] is True


# --- delivery mode -------------------------------------------------------------------------


def test_listing_fails_raw_download_of_important_data() -> None:
    important = product(grade="important", risk_assessment=ASSESSOR_REPORT)  # offers file and api
    finding = run(Stage.LISTING, product=important)["R3.delivery-mode"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["modes"] == ["file", "api"]
    assert finding.evidence["not_allowed"] == ["file"]
    assert finding.evidence["allowed"] == ["api", "privacy_computing"]


def test_trade_fails_file_delivery_of_important_data() -> None:
    important = product(grade="important", risk_assessment=ASSESSOR_REPORT)
    finding = run(Stage.TRADE, product=important, trade=replace(TRADE, delivery_mode="file"))["R3.delivery-mode"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["modes"] == ["file"]
    assert run(Stage.TRADE, product=important)["R3.delivery-mode"].outcome is Outcome.PASS


def test_delivery_judges_the_mode_actually_used() -> None:
    important = product(grade="important", risk_assessment=ASSESSOR_REPORT)
    finding = run(Stage.DELIVERY, product=important, delivery=replace(DELIVERY, mode="file"))["R3.delivery-mode"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["modes"] == ["file"]  # the trade said api; the delivery used file


def test_delivery_mode_not_applicable_when_nothing_is_offered() -> None:
    finding = run(Stage.LISTING, product=product(delivery_modes=()))["R3.delivery-mode"]
    assert finding.outcome is Outcome.NOT_APPLICABLE
    assert finding.evidence["modes"] == []


def test_missing_trade_or_delivery_fails_the_mode_checks_closed() -> None:
    sensitive = product(contains_sensitive_personal_info=True)
    at_trade = run(Stage.TRADE, product=sensitive, trade=None)
    assert at_trade["R3.delivery-mode"].outcome is Outcome.FAIL
    assert at_trade["R3.delivery-mode"].evidence == {"grade": "general", "trade": None}
    assert at_trade["R3.sensitive-pi-delivery"].outcome is Outcome.FAIL
    at_delivery = run(Stage.DELIVERY, product=sensitive, delivery=None)
    assert at_delivery["R3.delivery-mode"].outcome is Outcome.FAIL
    assert at_delivery["R3.delivery-mode"].evidence == {"grade": "general", "delivery": None}
    assert at_delivery["R3.sensitive-pi-delivery"].outcome is Outcome.FAIL


def test_sensitive_pi_delivery_not_applicable_without_sensitive_pi() -> None:
    finding = run(Stage.TRADE)["R3.sensitive-pi-delivery"]
    assert finding.outcome is Outcome.NOT_APPLICABLE
    assert finding.evidence == {"contains_sensitive_personal_info": False}


def test_sensitive_pi_may_not_be_downloaded() -> None:
    sensitive = product(contains_sensitive_personal_info=True)
    listed = run(Stage.LISTING, product=sensitive)["R3.sensitive-pi-delivery"]
    assert listed.outcome is Outcome.FAIL
    assert listed.evidence["not_allowed"] == ["file"]
    traded = run(Stage.TRADE, product=sensitive, trade=replace(TRADE, delivery_mode="file"))
    assert traded["R3.sensitive-pi-delivery"].outcome is Outcome.FAIL
    assert traded["R3.delivery-mode"].outcome is Outcome.PASS  # general grade allows file; sensitive PI does not
    by_api = run(Stage.TRADE, product=sensitive)["R3.sensitive-pi-delivery"]
    assert by_api.outcome is Outcome.PASS
    assert by_api.evidence["allowed"] == ["api", "privacy_computing"]


# --- privacy computing ---------------------------------------------------------------------


def test_privacy_computing_passes_with_its_privacy_terms_at_every_stage() -> None:
    private = product(delivery_modes=("privacy_computing",), computation=PRIVATE_TERMS)
    in_play = {"trade": replace(TRADE, delivery_mode="privacy_computing")}
    for stage, parts in ((Stage.LISTING, {}), (Stage.TRADE, in_play), (Stage.DELIVERY, {})):
        delivery = {"delivery": replace(DELIVERY, mode="privacy_computing")} if stage is Stage.DELIVERY else {}
        finding = run(stage, product=private, **parts, **delivery)["R3.privacy-computing"]
        assert finding.outcome is Outcome.PASS, (stage, finding)
        assert finding.evidence["epsilon_per_query"] == 0.5
        assert finding.evidence["bounded"] == ["amount"]


@pytest.mark.parametrize(
    ("terms", "problem"),
    [
        (None, "no epsilon per query and per licence"),
        (ComputationFacts(measure=("amount",)), "no epsilon per query and per licence"),
        (replace(PRIVATE_TERMS, bounds={}), "no clamping bounds for ['amount']"),
        (replace(PRIVATE_TERMS, epsilon_per_query=2.0), "is not above 0 and at most 1.0"),
        (replace(PRIVATE_TERMS, epsilon_budget=0.25), "is not above 0 and at most 0.25"),
        (replace(PRIVATE_TERMS, epsilon_budget=50.0), "(50.0) is above 10.0"),
        (
            replace(PRIVATE_TERMS, bounds={"amount": MeasureBounds(lower=5, upper=5)}),
            "lower is not below upper for ['amount']",
        ),
    ],
)
def test_privacy_computing_without_sound_terms_fails(terms: ComputationFacts | None, problem: str) -> None:
    listed = run(Stage.LISTING, product=product(delivery_modes=("privacy_computing",), computation=terms))
    finding = listed["R3.privacy-computing"]
    assert finding.outcome is Outcome.FAIL
    assert any(problem in p for p in finding.evidence["problems"]), finding.evidence
    ordered = {"trade": replace(TRADE, delivery_mode="privacy_computing")}
    traded = run(Stage.TRADE, product=product(computation=terms), **ordered)["R3.privacy-computing"]
    assert traded.outcome is Outcome.FAIL


def test_privacy_terms_are_not_asked_of_other_modes() -> None:
    for stage in STAGES:
        finding = run(stage, product=product(computation=None))["R3.privacy-computing"]
        assert finding.outcome is Outcome.NOT_APPLICABLE


def test_privacy_limits_are_parameters() -> None:
    loose = _configured({"max_epsilon_per_query": 3.0, "max_epsilon_budget": 100.0})
    generous = product(
        delivery_modes=("privacy_computing",),
        computation=replace(PRIVATE_TERMS, epsilon_per_query=2.0, epsilon_budget=50.0),
    )
    assert run(Stage.LISTING, product=generous)["R3.privacy-computing"].outcome is Outcome.FAIL
    assert run(Stage.LISTING, loose, product=generous)["R3.privacy-computing"].outcome is Outcome.PASS


# --- cross-border --------------------------------------------------------------------------


def test_cross_border_not_applicable_at_listing_and_for_domestic_buyers() -> None:
    assert run(Stage.LISTING)["R3.cross-border"].outcome is Outcome.NOT_APPLICABLE
    domestic = run(Stage.TRADE, buyer=replace(BUYER, jurisdiction="CN"))["R3.cross-border"]
    assert domestic.outcome is Outcome.NOT_APPLICABLE
    assert domestic.evidence == {"buyer_jurisdiction": "CN", "scope": "domestic"}


@pytest.mark.parametrize("jurisdiction", ["SG", "US", "HK", "810000"])
@pytest.mark.parametrize("stage", [Stage.TRADE, Stage.DELIVERY])
def test_pi_to_a_buyer_abroad_without_assessment_fails(stage: Stage, jurisdiction: str) -> None:
    finding = run(stage, buyer=replace(BUYER, jurisdiction=jurisdiction))["R3.cross-border"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["buyer_jurisdiction"] == jurisdiction
    assert finding.evidence["scope"] == "foreign"
    assert finding.evidence["required_because"] == ["personal_information"]
    assert finding.evidence["report"] is None


def test_important_data_abroad_without_assessment_fails() -> None:
    important = product(grade="important", risk_assessment=ASSESSOR_REPORT, **NO_PI)
    finding = run(Stage.TRADE, product=important, buyer=FOREIGN)["R3.cross-border"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["required_because"] == ["grade_important"]


def test_expired_cross_border_assessment_fails() -> None:
    expired = product(cross_border_assessment=assessment(valid_until=date(2026, 11, 1)))
    finding = run(Stage.DELIVERY, product=expired, buyer=FOREIGN)["R3.cross-border"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["valid_until"] == "2026-11-01"
    assert "expired" in finding.message


def test_general_data_without_pi_may_go_abroad() -> None:
    finding = run(Stage.TRADE, product=product(**NO_PI), buyer=FOREIGN)["R3.cross-border"]
    assert finding.outcome is Outcome.PASS
    assert finding.evidence["requires_assessment"] is False


@pytest.mark.parametrize("jurisdiction", ["ZZ", "529999", ""])
def test_unknown_buyer_jurisdiction_is_held_for_review(jurisdiction: str) -> None:
    finding = run(Stage.TRADE, buyer=replace(BUYER, jurisdiction=jurisdiction))["R3.cross-border"]
    assert finding.outcome is Outcome.REVIEW
    assert finding.evidence == {"buyer_jurisdiction": jurisdiction, "scope": None}


def test_missing_buyer_fails_cross_border_closed() -> None:
    finding = run(Stage.DELIVERY, buyer=None)["R3.cross-border"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence == {"buyer": None}


def test_without_product_every_check_fails_closed() -> None:
    for stage in STAGES:
        snapshot = snapshot_for(stage, product=None) if stage is not Stage.LISTING else Snapshot(provider=PROVIDER)
        findings = by_check(RULE.evaluate(context(stage, snapshot)))
        assert set(findings) == CHECKS
        assert all(f.outcome is Outcome.FAIL for f in findings.values())
        assert all(f.evidence == {"product": None} for f in findings.values())


def test_repeated_evaluation_follows_the_facts_and_the_day() -> None:
    rule = SecurityAssessmentRule()
    important = product(grade="important", risk_assessment=ASSESSOR_REPORT)
    snapshot = delivery_snapshot(product=important)
    before = by_check(rule.evaluate(context(Stage.DELIVERY, snapshot)))
    assert by_check(rule.evaluate(context(Stage.DELIVERY, snapshot))) == before
    assert before["R3.risk-assessment"].outcome is Outcome.PASS
    after = by_check(rule.evaluate(context(Stage.DELIVERY, snapshot, now=NOW.replace(year=2027, month=3, day=2))))
    assert after["R3.risk-assessment"].outcome is Outcome.FAIL


# --- parameters ----------------------------------------------------------------------------


def _configured(parameters: dict[str, object]) -> SecurityAssessmentRule:
    rulebook = build_rulebook({"R3": SecurityAssessmentRule}, {"rules": {"R3": {"parameters": parameters}}})
    active = rulebook.get("R3")
    assert active is not None
    assert isinstance(active.rule, SecurityAssessmentRule)
    return active.rule


def test_allowed_delivery_modes_parameter_changes_the_outcome() -> None:
    no_files = _configured(
        {"allowed_delivery_modes": {"general": ["api", "privacy_computing"], "important": ["privacy_computing"]}}
    )
    by_file = {"trade": replace(TRADE, delivery_mode="file")}
    assert run(Stage.TRADE, **by_file)["R3.delivery-mode"].outcome is Outcome.PASS
    finding = run(Stage.TRADE, no_files, **by_file)["R3.delivery-mode"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["allowed"] == ["api", "privacy_computing"]
    # A grade the operator's table leaves out allows nothing (fail closed).
    core_missing = run(Stage.TRADE, no_files, product=product(grade="core"))["R3.delivery-mode"]
    assert core_missing.outcome is Outcome.FAIL
    assert core_missing.evidence["not_allowed"] == ["api"]


def test_sensitive_modes_and_validity_parameters_change_the_outcome() -> None:
    sensitive = product(contains_sensitive_personal_info=True)
    strict = _configured({"sensitive_pi_delivery_modes": ["privacy_computing"], "cross_border_validity_months": 6})
    assert run(Stage.TRADE, product=sensitive)["R3.sensitive-pi-delivery"].outcome is Outcome.PASS
    assert run(Stage.TRADE, strict, product=sensitive)["R3.sensitive-pi-delivery"].outcome is Outcome.FAIL

    undated = product(cross_border_assessment=assessment(valid_until=None))  # issued 2026-03-01
    assert run(Stage.TRADE, product=undated, buyer=FOREIGN)["R3.cross-border"].outcome is Outcome.PASS
    expired = run(Stage.TRADE, strict, product=undated, buyer=FOREIGN)["R3.cross-border"]
    assert expired.outcome is Outcome.FAIL
    assert expired.evidence["valid_until"] == "2026-09-01"

    yearly = _configured({"risk_assessment_validity_months": 6})
    important = product(grade="important", risk_assessment=assessment(valid_until=None))
    assert run(Stage.LISTING, product=important)["R3.risk-assessment"].outcome is Outcome.PASS
    assert run(Stage.LISTING, yearly, product=important)["R3.risk-assessment"].outcome is Outcome.FAIL
