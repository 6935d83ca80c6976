"""R7 data merchant admission and operation: penalties, security capability, status, complaint rate."""

from __future__ import annotations

import json
from datetime import date
from importlib.metadata import EntryPoint

import pytest

from marketplace.compliance.contract import Finding, Outcome, Stage
from marketplace.compliance.registry import load_rule_classes
from marketplace.compliance.snapshots import OrganizationFacts, Snapshot
from rules.r7_merchant_operation import MerchantOperationRule
from tests.rules.snapshots import (
    BUYER,
    INTERMEDIARY,
    PROVIDER,
    admission_snapshot,
    context,
    delivery_snapshot,
    listing_snapshot,
    replace,
    settlement_snapshot,
    trade_snapshot,
)

OPERATING_STAGES = [Stage.LISTING, Stage.TRADE, Stage.SETTLEMENT]


def run(stage: Stage, snapshot: Snapshot, rule: MerchantOperationRule | None = None) -> dict[str, Finding]:
    findings = (rule or MerchantOperationRule()).evaluate(context(stage, snapshot))
    codes = [f.check for f in findings]
    assert len(codes) == len(set(codes)), codes
    for finding in findings:
        assert finding.rule_id == "R7"
        assert finding.message
        json.dumps(finding.as_json())
    return {f.check.removeprefix("R7."): f for f in findings}


def admission(org: OrganizationFacts | None = None, rule: MerchantOperationRule | None = None) -> dict[str, Finding]:
    return run(Stage.ADMISSION, admission_snapshot(org), rule)


def operating(
    stage: Stage, provider: OrganizationFacts = PROVIDER, rule: MerchantOperationRule | None = None
) -> dict[str, Finding]:
    if stage is Stage.LISTING:
        snapshot = listing_snapshot(provider=provider)
    elif stage is Stage.TRADE:
        snapshot = trade_snapshot(provider=provider)
    else:
        snapshot = settlement_snapshot(provider=provider)
    return run(stage, snapshot, rule)


# --- declarations ------------------------------------------------------------------------------


def test_declarations_and_loading() -> None:
    point = EntryPoint(name="R7", value="rules.r7_merchant_operation:MerchantOperationRule", group="marketplace.rules")
    assert load_rule_classes([point]) == {"R7": MerchantOperationRule}
    assert MerchantOperationRule.title_zh == "数据商准入及运行管理指引"
    assert MerchantOperationRule.stages == frozenset({Stage.ADMISSION, Stage.LISTING, Stage.TRADE, Stage.SETTLEMENT})
    assert MerchantOperationRule.parameters["max_penalties_last_3y"] == 0
    assert MerchantOperationRule.parameters["min_dsmm_level_provider"] == 2


def test_delivery_stage_yields_nothing() -> None:
    assert MerchantOperationRule().evaluate(context(Stage.DELIVERY, delivery_snapshot())) == []


def test_inverted_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="complaint_rate_review"):
        MerchantOperationRule({"complaint_rate_review": 0.2, "complaint_rate_suspension": 0.1})


# --- admission -----------------------------------------------------------------------------------


def test_admission_realistic_provider_passes() -> None:
    found = admission()
    assert list(found) == ["penalties", "security-capability"]
    assert found["penalties"].outcome is Outcome.PASS
    assert found["penalties"].evidence["penalties_last_3y"] == 0
    assert found["penalties"].evidence["last_penalty_on"] is None
    assert found["penalties"].evidence["window_starts_on"] == "2023-11-22"
    assert found["security-capability"].outcome is Outcome.PASS
    assert found["security-capability"].evidence["dsmm_level"] == 3


def test_admission_without_applicant_fails_closed() -> None:
    found = run(Stage.ADMISSION, Snapshot())
    assert [f.outcome for f in found.values()] == [Outcome.FAIL, Outcome.FAIL]
    assert found["penalties"].evidence == {"missing": ["organization"]}


def test_admission_recent_penalty_fails() -> None:
    penalised = replace(PROVIDER, status="pending", penalties_last_3y=1, last_penalty_on=date(2025, 1, 10))
    finding = admission(penalised)["penalties"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["penalties_last_3y"] == 1
    assert finding.evidence["last_penalty_on"] == "2025-01-10"
    assert finding.evidence["penalties_counted"] == 1


@pytest.mark.parametrize(
    ("last_penalty_on", "outcome", "counted"),
    [
        (date(2024, 6, 1), Outcome.FAIL, 1),  # date inside the window though the count says 0
        (date(2023, 11, 22), Outcome.FAIL, 1),  # first day of the window
        (date(2023, 11, 21), Outcome.PASS, 0),  # just outside the window
    ],
)
def test_admission_last_penalty_date_counts(last_penalty_on: date, outcome: Outcome, counted: int) -> None:
    applicant = replace(PROVIDER, status="pending", penalties_last_3y=0, last_penalty_on=last_penalty_on)
    finding = admission(applicant)["penalties"]
    assert finding.outcome is outcome
    assert finding.evidence["penalties_counted"] == counted
    assert finding.evidence["last_penalty_in_window"] is (counted == 1)


def test_admission_weak_security_capability_fails() -> None:
    finding = admission(replace(PROVIDER, status="pending", dsmm_level=1))["security-capability"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["dsmm_level"] == 1
    assert finding.evidence["min_dsmm_level_provider"] == 2


@pytest.mark.parametrize("org", [BUYER, INTERMEDIARY])
def test_admission_security_capability_not_applicable_to_non_providers(org: OrganizationFacts) -> None:
    found = admission(replace(org, status="pending", dsmm_level=0))
    assert found["security-capability"].outcome is Outcome.NOT_APPLICABLE
    assert found["security-capability"].evidence["kind"] == org.kind
    assert found["penalties"].outcome is Outcome.PASS


# --- listing, trade, settlement -----------------------------------------------------------------


@pytest.mark.parametrize("stage", OPERATING_STAGES)
def test_operating_realistic_snapshot_passes(stage: Stage) -> None:
    found = operating(stage)
    expected = (
        ["provider-status", "buyer-status", "operation-rate"]
        if stage is Stage.TRADE
        else [
            "provider-status",
            "operation-rate",
        ]
    )
    assert list(found) == expected
    assert all(f.outcome is Outcome.PASS for f in found.values())
    rate = found["operation-rate"].evidence
    assert rate["trades_in_window"] == 120
    assert rate["complaints_in_window"] == 1
    assert rate["disputes_in_window"] == 1
    assert rate["rate"] == 0.0167


@pytest.mark.parametrize("stage", OPERATING_STAGES)
@pytest.mark.parametrize("status", ["suspended", "pending", "under_review", "rejected"])
def test_provider_not_admitted_or_suspended_fails(stage: Stage, status: str) -> None:
    finding = operating(stage, replace(PROVIDER, status=status))["provider-status"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["status"] == status
    assert ("suspended" in finding.message) is (status == "suspended")


@pytest.mark.parametrize("stage", OPERATING_STAGES)
def test_missing_provider_fails_closed(stage: Stage) -> None:
    snapshot = Snapshot(buyer=BUYER) if stage is Stage.TRADE else Snapshot()
    found = run(stage, snapshot)
    assert found["provider-status"].outcome is Outcome.FAIL
    assert found["operation-rate"].outcome is Outcome.FAIL
    assert found["operation-rate"].evidence == {"missing": ["provider"]}


@pytest.mark.parametrize("status", ["pending", "suspended"])
def test_trade_buyer_not_admitted_fails(status: str) -> None:
    found = run(Stage.TRADE, trade_snapshot(buyer=replace(BUYER, status=status)))
    assert found["buyer-status"].outcome is Outcome.FAIL
    assert found["buyer-status"].evidence == {"organization_id": "org-buyer", "party": "buyer", "status": status}
    assert found["provider-status"].outcome is Outcome.PASS


def test_trade_without_buyer_fails() -> None:
    found = run(Stage.TRADE, trade_snapshot(buyer=None))
    assert found["buyer-status"].outcome is Outcome.FAIL
    assert found["buyer-status"].evidence == {"missing": ["buyer"]}


@pytest.mark.parametrize(
    ("complaints", "disputes", "outcome", "rate"),
    [
        (2, 2, Outcome.PASS, 0.04),
        (3, 2, Outcome.REVIEW, 0.05),  # at the review threshold
        (10, 4, Outcome.REVIEW, 0.14),
        (10, 5, Outcome.FAIL, 0.15),  # at the suspension threshold
        (30, 10, Outcome.FAIL, 0.4),
    ],
)
@pytest.mark.parametrize("stage", OPERATING_STAGES)
def test_operation_rate_thresholds(stage: Stage, complaints: int, disputes: int, outcome: Outcome, rate: float) -> None:
    provider = replace(PROVIDER, trades_in_window=100, complaints_in_window=complaints, disputes_in_window=disputes)
    finding = operating(stage, provider)["operation-rate"]
    assert finding.outcome is outcome
    assert finding.evidence["rate"] == rate
    assert finding.evidence["complaints_in_window"] == complaints
    assert finding.evidence["disputes_in_window"] == disputes


def test_operation_rate_not_applicable_with_few_trades() -> None:
    provider = replace(PROVIDER, trades_in_window=19, complaints_in_window=10, disputes_in_window=0)
    finding = operating(Stage.TRADE, provider)["operation-rate"]
    assert finding.outcome is Outcome.NOT_APPLICABLE
    assert finding.evidence["trades_in_window"] == 19
    assert finding.evidence["rate"] is None


def test_repeated_evaluation_follows_the_facts() -> None:
    rule = MerchantOperationRule()
    assert operating(Stage.TRADE, rule=rule)["provider-status"].outcome is Outcome.PASS
    suspended = replace(PROVIDER, status="suspended")
    assert operating(Stage.TRADE, suspended, rule)["provider-status"].outcome is Outcome.FAIL
    assert operating(Stage.TRADE, rule=rule)["provider-status"].outcome is Outcome.PASS
    assert list(operating(Stage.SETTLEMENT, rule=rule)) == ["provider-status", "operation-rate"]


# --- parameters ----------------------------------------------------------------------------------


def test_parameters_change_the_outcome() -> None:
    strict_rate = MerchantOperationRule({"complaint_rate_review": 0.01})
    assert operating(Stage.TRADE, rule=strict_rate)["operation-rate"].outcome is Outcome.REVIEW
    strict_suspension = MerchantOperationRule({"complaint_rate_review": 0.01, "complaint_rate_suspension": 0.015})
    assert operating(Stage.TRADE, rule=strict_suspension)["operation-rate"].outcome is Outcome.FAIL
    more_trades = MerchantOperationRule({"min_trades_for_rate": 200})
    assert operating(Stage.TRADE, rule=more_trades)["operation-rate"].outcome is Outcome.NOT_APPLICABLE
    lenient = MerchantOperationRule({"max_penalties_last_3y": 1})
    penalised = replace(PROVIDER, status="pending", penalties_last_3y=1, last_penalty_on=date(2025, 1, 10))
    assert admission(penalised, lenient)["penalties"].outcome is Outcome.PASS
    demanding = MerchantOperationRule({"min_dsmm_level_provider": 4})
    finding = admission(rule=demanding)["security-capability"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["min_dsmm_level_provider"] == 4
