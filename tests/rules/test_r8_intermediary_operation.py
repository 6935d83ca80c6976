"""R8 data intermediary admission and operation: roles, fee, neutrality, no data retention."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint

import pytest

from marketplace.compliance.contract import Finding, Outcome, Stage
from marketplace.compliance.registry import load_rule_classes
from marketplace.compliance.snapshots import OrganizationFacts, Snapshot
from rules.r8_intermediary_operation import IntermediaryOperationRule
from tests.rules.snapshots import (
    BUYER,
    INTERMEDIARY,
    PROVIDER,
    admission_snapshot,
    context,
    replace,
    trade_snapshot,
)

ADMISSION_CHECKS = ["roles", "fee-disclosure", "no-data-retention"]
TRADE_CHECKS = ["admitted", "trade-role", "fee-disclosure", "related-parties", "no-data-retention"]
APPLICANT = replace(INTERMEDIARY, status="pending")


def run(stage: Stage, snapshot: Snapshot, rule: IntermediaryOperationRule | None = None) -> dict[str, Finding]:
    findings = (rule or IntermediaryOperationRule()).evaluate(context(stage, snapshot))
    codes = [f.check for f in findings]
    assert len(codes) == len(set(codes)), codes
    for finding in findings:
        assert finding.rule_id == "R8"
        assert finding.message
        json.dumps(finding.as_json())
    return {f.check.removeprefix("R8."): f for f in findings}


def admission(**changes: object) -> dict[str, Finding]:
    return run(Stage.ADMISSION, admission_snapshot(replace(APPLICANT, **changes)))


def trade(rule: IntermediaryOperationRule | None = None, **changes: object) -> dict[str, Finding]:
    return run(Stage.TRADE, trade_snapshot(intermediary=replace(INTERMEDIARY, **changes)), rule)


# --- declarations ------------------------------------------------------------------------------


def test_declarations_and_loading() -> None:
    point = EntryPoint(
        name="R8", value="rules.r8_intermediary_operation:IntermediaryOperationRule", group="marketplace.rules"
    )
    assert load_rule_classes([point]) == {"R8": IntermediaryOperationRule}
    assert IntermediaryOperationRule.title_zh == "数据中介准入及运行管理指引"
    assert IntermediaryOperationRule.stages == frozenset({Stage.ADMISSION, Stage.TRADE})
    assert IntermediaryOperationRule.parameters == {"trade_roles": ["broker", "delivery"]}


def test_listing_stage_yields_nothing() -> None:
    assert IntermediaryOperationRule().evaluate(context(Stage.LISTING, trade_snapshot())) == []


@pytest.mark.parametrize("roles", [["notary"], "broker", [1]])
def test_invalid_trade_roles_are_refused(roles: object) -> None:
    with pytest.raises(ValueError, match="trade_roles"):
        IntermediaryOperationRule({"trade_roles": roles})


# --- admission -----------------------------------------------------------------------------------


def test_admission_intermediary_passes() -> None:
    found = admission()
    assert list(found) == ADMISSION_CHECKS
    assert all(f.outcome is Outcome.PASS for f in found.values())
    assert found["roles"].evidence["roles"] == ["broker"]
    assert found["fee-disclosure"].evidence["fee_disclosed"] is True
    assert found["no-data-retention"].evidence["retains_no_traded_data"] is True


@pytest.mark.parametrize("org", [PROVIDER, BUYER])
def test_admission_not_applicable_to_other_kinds(org: OrganizationFacts) -> None:
    found = run(Stage.ADMISSION, admission_snapshot(replace(org, status="pending")))
    assert list(found) == ADMISSION_CHECKS
    assert all(f.outcome is Outcome.NOT_APPLICABLE for f in found.values())
    assert found["roles"].evidence == {"organization_id": org.id, "kind": org.kind}


def test_admission_without_applicant_fails_closed() -> None:
    found = run(Stage.ADMISSION, Snapshot())
    assert list(found) == ADMISSION_CHECKS
    assert all(f.outcome is Outcome.FAIL for f in found.values())


def test_admission_no_role_fails() -> None:
    finding = admission(intermediary_roles=())["roles"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["roles"] == []


@pytest.mark.parametrize("fee", [None, "", "   "])
def test_admission_undisclosed_fee_fails(fee: str | None) -> None:
    finding = admission(fee_disclosure=fee)["fee-disclosure"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["fee_disclosed"] is False


@pytest.mark.parametrize("attested", [None, False])
def test_admission_no_retention_attestation_fails(attested: bool | None) -> None:
    finding = admission(retains_no_traded_data=attested)["no-data-retention"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["retains_no_traded_data"] is attested


# --- trade ---------------------------------------------------------------------------------------


def test_trade_without_intermediary_is_not_applicable() -> None:
    found = run(Stage.TRADE, trade_snapshot())
    assert list(found) == TRADE_CHECKS
    assert all(f.outcome is Outcome.NOT_APPLICABLE for f in found.values())
    assert found["admitted"].evidence == {"intermediary": False}


def test_trade_with_admitted_broker_passes() -> None:
    found = trade()
    assert list(found) == TRADE_CHECKS
    assert all(f.outcome is Outcome.PASS for f in found.values())
    assert found["trade-role"].evidence == {
        "organization_id": "org-broker",
        "roles": ["broker"],
        "trade_roles": ["broker", "delivery"],
    }
    assert found["related-parties"].evidence["related_to_buyer"] is False
    assert found["related-parties"].evidence["related_to_provider"] is False


@pytest.mark.parametrize("status", ["pending", "suspended", "rejected"])
def test_trade_intermediary_not_admitted_fails(status: str) -> None:
    finding = trade(status=status)["admitted"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["status"] == status


def test_trade_intermediary_of_another_kind_fails() -> None:
    finding = trade(kind="provider")["admitted"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["kind"] == "provider"


@pytest.mark.parametrize(
    ("roles", "outcome"),
    [
        (("assessor",), Outcome.FAIL),
        ((), Outcome.FAIL),
        (("delivery",), Outcome.PASS),
        (("assessor", "broker"), Outcome.PASS),
    ],
)
def test_trade_role(roles: tuple[str, ...], outcome: Outcome) -> None:
    finding = trade(intermediary_roles=roles)["trade-role"]
    assert finding.outcome is outcome
    assert finding.evidence["roles"] == list(roles)


def test_trade_undisclosed_fee_fails() -> None:
    finding = trade(fee_disclosure=None)["fee-disclosure"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["fee_disclosed"] is False


def test_trade_related_to_both_sides_fails() -> None:
    finding = trade(related_organization_ids=("org-provider", "org-buyer"))["related-parties"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["related_to_buyer"] is True
    assert finding.evidence["related_to_provider"] is True


@pytest.mark.parametrize(("related", "side"), [(("org-buyer",), "buyer"), (("org-provider", "org-other"), "provider")])
def test_trade_related_to_one_side_is_reviewed(related: tuple[str, ...], side: str) -> None:
    finding = trade(related_organization_ids=related)["related-parties"]
    assert finding.outcome is Outcome.REVIEW
    assert finding.evidence[f"related_to_{side}"] is True
    other = "provider" if side == "buyer" else "buyer"
    assert finding.evidence[f"related_to_{other}"] is False


def test_trade_intermediary_that_is_a_side_counts_as_related() -> None:
    broker_as_buyer = replace(BUYER, id=INTERMEDIARY.id)
    found = run(Stage.TRADE, trade_snapshot(buyer=broker_as_buyer, intermediary=INTERMEDIARY))
    assert found["related-parties"].outcome is Outcome.REVIEW
    assert found["related-parties"].evidence["related_to_buyer"] is True


def test_trade_missing_side_fails_related_parties() -> None:
    found = run(Stage.TRADE, trade_snapshot(buyer=None, intermediary=INTERMEDIARY))
    assert found["related-parties"].outcome is Outcome.FAIL
    assert found["related-parties"].evidence == {"missing": ["buyer"]}


def test_trade_data_retention_not_attested_fails() -> None:
    finding = trade(retains_no_traded_data=False)["no-data-retention"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["retains_no_traded_data"] is False


def test_repeated_evaluation_follows_the_facts() -> None:
    rule = IntermediaryOperationRule()
    assert trade(rule)["related-parties"].outcome is Outcome.PASS
    assert trade(rule, related_organization_ids=("org-buyer",))["related-parties"].outcome is Outcome.REVIEW
    assert trade(rule)["related-parties"].outcome is Outcome.PASS
    assert trade(rule, fee_disclosure=" ")["fee-disclosure"].outcome is Outcome.FAIL


# --- parameters ----------------------------------------------------------------------------------


def test_trade_roles_parameter_changes_the_outcome() -> None:
    brokers_only = IntermediaryOperationRule({"trade_roles": ["broker"]})
    delivery = trade(brokers_only, intermediary_roles=("delivery",))["trade-role"]
    assert delivery.outcome is Outcome.FAIL
    assert delivery.evidence["trade_roles"] == ["broker"]
    with_assessors = IntermediaryOperationRule({"trade_roles": ["broker", "delivery", "assessor"]})
    assert trade(with_assessors, intermediary_roles=("assessor",))["trade-role"].outcome is Outcome.PASS
