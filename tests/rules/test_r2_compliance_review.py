"""R2 — compliance review: data source, lawful-source commitment, authorisation chain, PIPL legal
basis, separate consent and impact assessment, prohibited content, compliance report."""

from __future__ import annotations

import json
from datetime import date

import pytest

from marketplace.compliance.contract import Finding, Outcome, Stage
from marketplace.compliance.rulebook import build_rulebook
from marketplace.compliance.snapshots import Assessment, AuthorisationLink, Snapshot
from rules.r2_compliance_review import ComplianceReviewRule, months_before
from tests.rules.snapshots import (
    ASSESSOR_REPORT,
    AUTHORISATION,
    NOW,
    PRODUCT,
    PROVIDER,
    admission_snapshot,
    by_check,
    context,
    delivery_snapshot,
    listing_snapshot,
    replace,
    trade_snapshot,
)

RULE = ComplianceReviewRule()

CHECKS = {
    "R2.data-source",
    "R2.lawful-source",
    "R2.authorisation-chain",
    "R2.pi-legal-basis",
    "R2.pi-separate-consent",
    "R2.pi-impact-assessment",
    "R2.prohibited-content",
    "R2.compliance-report",
}
PI_CHECKS = {"R2.pi-legal-basis", "R2.pi-separate-consent", "R2.pi-impact-assessment"}
NO_PI = {"contains_personal_info": False, "contains_sensitive_personal_info": False}
PURCHASED = {"data_source": "purchased", "authorisation_chain": (AUTHORISATION,)}


def listing(rule: ComplianceReviewRule = RULE, /, **product_changes: object) -> dict[str, Finding]:
    product = replace(PRODUCT, **product_changes)
    return by_check(rule.evaluate(context(Stage.LISTING, listing_snapshot(product))))


def link(grantor: str, grantee: str, valid_until: date | None = date(2028, 1, 1)) -> AuthorisationLink:
    return AuthorisationLink(
        grantor=grantor, grantee=grantee, document=f"{grantor}->{grantee}", valid_until=valid_until
    )


def report(**changes: object) -> Assessment:
    return replace(ASSESSOR_REPORT, **changes)


def test_declarations() -> None:
    assert RULE.id == "R2"
    assert RULE.title_zh == "数据交易合规性审查指南"
    assert RULE.title_en == "Compliance review guidelines"
    assert RULE.version == "1.0.0"
    assert RULE.stages == frozenset({Stage.LISTING, Stage.TRADE})
    assert set(RULE.parameters) == {
        "allowed_legal_bases",
        "separate_consent_exempt_bases",
        "impact_assessment_max_age_months",
        "report_default_validity_months",
        "authorisation_required_sources",
    }
    assert {"PIPL Art. 13", "PIPL Art. 23", "PIPL Art. 55", "PIPL Art. 56"} <= set(RULE.basis)


def test_other_stages_yield_nothing() -> None:
    assert RULE.evaluate(context(Stage.ADMISSION, admission_snapshot())) == []
    assert RULE.evaluate(context(Stage.DELIVERY, delivery_snapshot())) == []


def test_months_before_clamps_to_the_end_of_the_month() -> None:
    assert months_before(date(2026, 11, 22), 12) == date(2025, 11, 22)
    assert months_before(date(2026, 3, 31), 1) == date(2026, 2, 28)
    assert months_before(date(2026, 1, 15), 1) == date(2025, 12, 15)


# --- pass ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", [Stage.LISTING, Stage.TRADE])
def test_realistic_snapshot_passes(stage: Stage) -> None:
    snapshot = listing_snapshot() if stage is Stage.LISTING else trade_snapshot()
    findings = by_check(RULE.evaluate(context(stage, snapshot)))
    assert set(findings) == CHECKS
    assert findings["R2.authorisation-chain"].outcome is Outcome.NOT_APPLICABLE
    for check in CHECKS - {"R2.authorisation-chain"}:
        assert findings[check].outcome is Outcome.PASS, findings[check]
    assert findings["R2.data-source"].evidence == {"data_source": "self_generated"}
    assert findings["R2.pi-legal-basis"].evidence["pi_legal_basis"] == "consent"
    assert findings["R2.pi-impact-assessment"].evidence == {
        "assessed_on": "2026-02-01",
        "oldest_acceptable": "2025-11-22",
        "max_age_months": 12,
    }
    assert findings["R2.prohibited-content"].evidence == {"flags": []}
    report_evidence = findings["R2.compliance-report"].evidence
    assert report_evidence["required_because"] == ["personal_information"]
    assert report_evidence["assessor_admitted"] is True
    assert report_evidence["valid_until"] == "2027-03-01"
    for finding in findings.values():
        json.dumps(finding.as_json())


# --- source --------------------------------------------------------------------------------


def test_fails_without_a_declared_source() -> None:
    findings = listing(data_source=None)
    assert findings["R2.data-source"].outcome is Outcome.FAIL
    assert findings["R2.data-source"].evidence == {"data_source": None}
    assert findings["R2.authorisation-chain"].outcome is Outcome.NOT_APPLICABLE


def test_fails_without_the_lawful_source_commitment() -> None:
    finding = listing(lawful_source_commitment=False)["R2.lawful-source"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence == {"lawful_source_commitment": False}


@pytest.mark.parametrize("source", ["purchased", "authorized_public"])
def test_authorisation_chain_passes_when_it_ends_at_the_provider(source: str) -> None:
    finding = listing(data_source=source, authorisation_chain=(AUTHORISATION,))["R2.authorisation-chain"]
    assert finding.outcome is Outcome.PASS
    assert finding.evidence["final_grantee"] == "org-provider"
    assert finding.evidence["ends_at_provider"] is True
    assert finding.evidence["expired"] == []


@pytest.mark.parametrize("source", ["purchased", "authorized_public"])
def test_authorisation_chain_fails_when_missing(source: str) -> None:
    finding = listing(data_source=source, authorisation_chain=())["R2.authorisation-chain"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence == {"data_source": source, "links": 0}


def test_authorisation_chain_fails_when_a_link_expired() -> None:
    old = link("上游数据公司", "org-provider", valid_until=date(2026, 11, 21))
    finding = listing(data_source="purchased", authorisation_chain=(old,))["R2.authorisation-chain"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["expired"] == [{"document": "上游数据公司->org-provider", "valid_until": "2026-11-21"}]


def test_authorisation_valid_until_today_is_still_in_force() -> None:
    today = link("上游数据公司", "org-provider", valid_until=date(2026, 11, 22))
    finding = listing(data_source="purchased", authorisation_chain=(today,))["R2.authorisation-chain"]
    assert finding.outcome is Outcome.PASS


def test_authorisation_chain_fails_when_it_ends_elsewhere() -> None:
    chain = (link("贵阳市大数据发展管理局", "org-other"),)
    finding = listing(data_source="purchased", authorisation_chain=chain)["R2.authorisation-chain"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["final_grantee"] == "org-other"
    assert finding.evidence["ends_at_provider"] is False


def test_authorisation_chain_may_end_at_the_provider_credit_code() -> None:
    chain = (link("贵阳市大数据发展管理局", "org-a"), link("org-a", PROVIDER.uscc))
    finding = listing(data_source="purchased", authorisation_chain=chain)["R2.authorisation-chain"]
    assert finding.outcome is Outcome.PASS
    assert finding.evidence["links"] == 2
    assert finding.evidence["breaks_before_link"] == []


def test_authorisation_chain_fails_when_broken() -> None:
    chain = (link("贵阳市大数据发展管理局", "org-a"), link("org-b", "org-provider"))
    finding = listing(data_source="purchased", authorisation_chain=chain)["R2.authorisation-chain"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["breaks_before_link"] == [1]
    assert finding.evidence["ends_at_provider"] is True


def test_authorisation_chain_fails_at_trade_without_a_provider() -> None:
    product = replace(PRODUCT, **PURCHASED)
    findings = by_check(RULE.evaluate(context(Stage.TRADE, trade_snapshot(product=product, provider=None))))
    finding = findings["R2.authorisation-chain"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["provider_id"] is None


def test_authorisation_chain_not_applicable_to_own_or_collected_data() -> None:
    for source in ("self_generated", "public_collection"):
        finding = listing(data_source=source)["R2.authorisation-chain"]
        assert finding.outcome is Outcome.NOT_APPLICABLE
        assert finding.evidence["data_source"] == source


def test_authorisation_expires_between_listing_and_trade() -> None:
    expiring = link("上游数据公司", "org-provider", valid_until=date(2026, 12, 31))
    product = replace(PRODUCT, data_source="purchased", authorisation_chain=(expiring,))
    listed = by_check(RULE.evaluate(context(Stage.LISTING, listing_snapshot(product))))
    assert listed["R2.authorisation-chain"].outcome is Outcome.PASS
    later = context(Stage.TRADE, trade_snapshot(product=product), now=NOW.replace(year=2027))
    traded = by_check(RULE.evaluate(later))
    assert traded["R2.authorisation-chain"].outcome is Outcome.FAIL
    assert traded["R2.authorisation-chain"].evidence["checked_on"] == "2027-11-22"


# --- personal information -----------------------------------------------------------------


def test_personal_information_checks_not_applicable_without_pi() -> None:
    findings = listing(**NO_PI)
    for check in PI_CHECKS:
        assert findings[check].outcome is Outcome.NOT_APPLICABLE
        assert findings[check].evidence == {"contains_personal_info": False}


def test_sensitive_pi_alone_counts_as_personal_information() -> None:
    findings = listing(contains_personal_info=False, contains_sensitive_personal_info=True, pi_legal_basis=None)
    assert findings["R2.pi-legal-basis"].outcome is Outcome.FAIL


@pytest.mark.parametrize("basis", [None, "legitimate_interest"])
def test_fails_pi_without_a_pipl_legal_basis(basis: str | None) -> None:
    finding = listing(pi_legal_basis=basis)["R2.pi-legal-basis"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["pi_legal_basis"] == basis
    assert "consent" in finding.evidence["allowed"]


def test_fails_pi_without_separate_consent_for_provision() -> None:
    finding = listing(separate_consent_for_provision=False)["R2.pi-separate-consent"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence == {"pi_legal_basis": "consent", "separate_consent_for_provision": False}


def test_fails_pi_without_impact_assessment() -> None:
    finding = listing(pi_impact_assessment_on=None)["R2.pi-impact-assessment"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["assessed_on"] is None


def test_fails_a_stale_impact_assessment() -> None:
    finding = listing(pi_impact_assessment_on=date(2025, 11, 21))["R2.pi-impact-assessment"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["assessed_on"] == "2025-11-21"
    assert finding.evidence["oldest_acceptable"] == "2025-11-22"
    assert listing(pi_impact_assessment_on=date(2025, 11, 22))["R2.pi-impact-assessment"].outcome is Outcome.PASS


def test_fails_an_impact_assessment_dated_in_the_future() -> None:
    finding = listing(pi_impact_assessment_on=date(2026, 12, 1))["R2.pi-impact-assessment"]
    assert finding.outcome is Outcome.FAIL
    assert "future" in finding.message


# --- prohibited content -------------------------------------------------------------------


def test_fails_prohibited_content_listing_every_flag() -> None:
    flags = ("national_security", "no_consent")
    finding = listing(prohibited_content=flags)["R2.prohibited-content"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence == {"flags": ["national_security", "no_consent"]}
    assert "national_security" in finding.message
    assert "no_consent" in finding.message


def test_prohibited_flag_raised_after_listing_stops_the_trade() -> None:
    product = replace(PRODUCT, prohibited_content=("barred_by_contract",))
    findings = by_check(RULE.evaluate(context(Stage.TRADE, trade_snapshot(product=product))))
    assert findings["R2.prohibited-content"].outcome is Outcome.FAIL
    assert findings["R2.prohibited-content"].evidence == {"flags": ["barred_by_contract"]}


# --- compliance report --------------------------------------------------------------------


def test_compliance_report_not_applicable_to_general_data_without_pi() -> None:
    finding = listing(compliance_report=None, **NO_PI)["R2.compliance-report"]
    assert finding.outcome is Outcome.NOT_APPLICABLE
    assert finding.evidence == {"grade": "general", "contains_personal_info": False}


@pytest.mark.parametrize(
    ("changes", "reasons"),
    [
        ({}, ["personal_information"]),
        ({"grade": "important", **NO_PI}, ["grade_important"]),
        ({"grade": None, **NO_PI}, ["grade_not_set"]),
    ],
)
def test_fails_without_a_required_compliance_report(changes: dict[str, object], reasons: list[str]) -> None:
    finding = listing(compliance_report=None, **changes)["R2.compliance-report"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence == {"required_because": reasons, "report": None}


def test_a_grade_outside_the_vocabulary_needs_a_compliance_report_as_no_grade_does() -> None:
    finding = listing(compliance_report=None, grade="secret", **NO_PI)["R2.compliance-report"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence == {"required_because": ["grade_not_set"], "report": None}


def test_fails_a_report_by_an_assessor_not_admitted() -> None:
    finding = listing(compliance_report=report(assessor_admitted=False))["R2.compliance-report"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["assessor_admitted"] is False
    assert finding.evidence["assessor_id"] == "org-assessor"


def test_fails_an_expired_report() -> None:
    finding = listing(compliance_report=report(valid_until=date(2026, 11, 21)))["R2.compliance-report"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["valid_until"] == "2026-11-21"
    assert finding.evidence["checked_on"] == "2026-11-22"


def test_fails_a_report_issued_in_the_future() -> None:
    finding = listing(compliance_report=report(issued_on=date(2026, 12, 1)))["R2.compliance-report"]
    assert finding.outcome is Outcome.FAIL
    assert "future" in finding.message


def test_report_without_expiry_is_valid_for_the_default_period() -> None:
    recent = listing(compliance_report=report(issued_on=date(2026, 1, 1), valid_until=None))["R2.compliance-report"]
    assert recent.outcome is Outcome.PASS
    assert recent.evidence["valid_until"] == "2027-01-01"
    assert recent.evidence["expiry_stated"] is False
    old = listing(compliance_report=report(issued_on=date(2025, 11, 1), valid_until=None))["R2.compliance-report"]
    assert old.outcome is Outcome.FAIL
    assert old.evidence["valid_until"] == "2026-11-01"


def test_without_product_every_check_fails_closed() -> None:
    for stage, snapshot in ((Stage.LISTING, Snapshot(provider=PROVIDER)), (Stage.TRADE, trade_snapshot(product=None))):
        findings = by_check(RULE.evaluate(context(stage, snapshot)))
        assert set(findings) == CHECKS
        assert all(f.outcome is Outcome.FAIL for f in findings.values())
        assert all(f.evidence == {"product": None} for f in findings.values())


def test_repeated_evaluation_follows_the_facts() -> None:
    rule = ComplianceReviewRule()
    first = listing(rule)
    assert listing(rule) == first
    assert listing(rule, lawful_source_commitment=False)["R2.lawful-source"].outcome is Outcome.FAIL
    assert listing(rule)["R2.lawful-source"].outcome is Outcome.PASS


# --- parameters ----------------------------------------------------------------------------


def _configured(parameters: dict[str, object]) -> ComplianceReviewRule:
    rulebook = build_rulebook({"R2": ComplianceReviewRule}, {"rules": {"R2": {"parameters": parameters}}})
    active = rulebook.get("R2")
    assert active is not None
    assert isinstance(active.rule, ComplianceReviewRule)
    return active.rule


def test_impact_assessment_age_parameter_changes_the_outcome() -> None:
    strict = _configured({"impact_assessment_max_age_months": 6})
    finding = listing(strict)["R2.pi-impact-assessment"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["oldest_acceptable"] == "2026-05-22"
    assert finding.evidence["max_age_months"] == 6


def test_legal_bases_parameter_changes_the_outcome() -> None:
    consent_only = _configured({"allowed_legal_bases": ["consent"]})
    assert listing(consent_only)["R2.pi-legal-basis"].outcome is Outcome.PASS
    assert listing(pi_legal_basis="contract")["R2.pi-legal-basis"].outcome is Outcome.PASS
    finding = listing(consent_only, pi_legal_basis="contract")["R2.pi-legal-basis"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["allowed"] == ["consent"]


def test_consent_exempt_bases_parameter_makes_separate_consent_not_applicable() -> None:
    exempt = _configured({"separate_consent_exempt_bases": ["legal_duty"]})
    changes = {"pi_legal_basis": "legal_duty", "separate_consent_for_provision": False}
    assert listing(**changes)["R2.pi-separate-consent"].outcome is Outcome.FAIL
    finding = listing(exempt, **changes)["R2.pi-separate-consent"]
    assert finding.outcome is Outcome.NOT_APPLICABLE
    assert finding.evidence["pi_legal_basis"] == "legal_duty"
    assert listing(exempt, separate_consent_for_provision=False)["R2.pi-separate-consent"].outcome is Outcome.FAIL


def test_report_validity_and_chain_sources_parameters_change_the_outcome() -> None:
    undated = report(issued_on=date(2025, 11, 1), valid_until=None)
    longer = _configured({"report_default_validity_months": 24, "authorisation_required_sources": ["purchased"]})
    assert listing(compliance_report=undated)["R2.compliance-report"].outcome is Outcome.FAIL
    assert listing(longer, compliance_report=undated)["R2.compliance-report"].outcome is Outcome.PASS
    public = {"data_source": "authorized_public", "authorisation_chain": ()}
    assert listing(**public)["R2.authorisation-chain"].outcome is Outcome.FAIL
    assert listing(longer, **public)["R2.authorisation-chain"].outcome is Outcome.NOT_APPLICABLE
