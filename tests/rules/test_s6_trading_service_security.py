"""S6 — GB/T 37932-2019 data trading service security: parties verified, delivery integrity,
licence active at delivery, record retention."""

from __future__ import annotations

import json

import pytest

from marketplace.compliance.contract import Outcome, Stage
from rules.s6_trading_service_security import TradingServiceSecurityStandard
from tests.rules.snapshots import (
    BUYER,
    DELIVERY,
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

RULE = TradingServiceSecurityStandard()


def test_declarations() -> None:
    assert RULE.id == "S6"
    assert RULE.stages == frozenset({Stage.TRADE, Stage.DELIVERY})
    assert RULE.parameters == {"retention_years": 3}
    assert "DSL Art. 33" in RULE.basis
    assert "PIPL Art. 56" in RULE.basis


def test_other_stages_yield_nothing() -> None:
    assert RULE.evaluate(context(Stage.LISTING, listing_snapshot())) == []
    assert RULE.evaluate(context(Stage.ADMISSION, admission_snapshot())) == []


# --- trade ----------------------------------------------------------------------------------


def test_trade_passes_for_the_realistic_snapshot() -> None:
    findings = by_check(RULE.evaluate(context(Stage.TRADE, trade_snapshot())))
    assert set(findings) == {"S6.provider-verified", "S6.buyer-verified", "S6.record-retention"}
    assert all(f.outcome is Outcome.PASS for f in findings.values())
    assert findings["S6.buyer-verified"].evidence["organization_id"] == BUYER.id
    assert findings["S6.buyer-verified"].evidence["status"] == "admitted"
    assert findings["S6.provider-verified"].evidence["organization_id"] == PROVIDER.id
    assert findings["S6.record-retention"].evidence == {"retention_years": 3, "legal_minimum_years": 3}
    for finding in findings.values():
        json.dumps(finding.as_json())


@pytest.mark.parametrize("status", ["pending", "under_review", "rejected", "suspended"])
def test_trade_fails_when_the_buyer_is_not_admitted(status: str) -> None:
    snapshot = trade_snapshot(buyer=replace(BUYER, status=status))
    finding = by_check(RULE.evaluate(context(Stage.TRADE, snapshot)))["S6.buyer-verified"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["status"] == status
    assert finding.evidence["role"] == "buyer"


def test_trade_fails_when_the_provider_is_suspended() -> None:
    snapshot = trade_snapshot(provider=replace(PROVIDER, status="suspended"))
    findings = by_check(RULE.evaluate(context(Stage.TRADE, snapshot)))
    assert findings["S6.provider-verified"].outcome is Outcome.FAIL
    assert findings["S6.provider-verified"].evidence["status"] == "suspended"
    assert findings["S6.buyer-verified"].outcome is Outcome.PASS


@pytest.mark.parametrize("role", ["buyer", "provider"])
def test_trade_fails_closed_when_a_party_is_missing(role: str) -> None:
    snapshot = trade_snapshot(**{role: None})
    finding = by_check(RULE.evaluate(context(Stage.TRADE, snapshot)))[f"S6.{role}-verified"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence == {"role": role, "present": False}


def test_retention_below_the_legal_minimum_fails_with_the_configured_value() -> None:
    rule = TradingServiceSecurityStandard({"retention_years": 2})
    finding = by_check(rule.evaluate(context(Stage.TRADE, trade_snapshot())))["S6.record-retention"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence == {"retention_years": 2, "legal_minimum_years": 3}


def test_retention_parameter_changes_the_outcome() -> None:
    snapshot = trade_snapshot()
    longer = TradingServiceSecurityStandard({"retention_years": 5})
    shorter = TradingServiceSecurityStandard({"retention_years": 1})
    assert by_check(longer.evaluate(context(Stage.TRADE, snapshot)))["S6.record-retention"].outcome is Outcome.PASS
    assert by_check(shorter.evaluate(context(Stage.TRADE, snapshot)))["S6.record-retention"].outcome is Outcome.FAIL


def test_trade_has_no_not_applicable_check() -> None:
    # Every S6 check applies to every trade and delivery: there is nothing to skip.
    for stage, snapshot in ((Stage.TRADE, trade_snapshot()), (Stage.DELIVERY, delivery_snapshot())):
        outcomes = {f.outcome for f in RULE.evaluate(context(stage, snapshot))}
        assert Outcome.NOT_APPLICABLE not in outcomes


# --- delivery -------------------------------------------------------------------------------


def test_delivery_passes_for_the_realistic_snapshot() -> None:
    findings = by_check(RULE.evaluate(context(Stage.DELIVERY, delivery_snapshot())))
    assert set(findings) == {
        "S6.provider-verified",
        "S6.buyer-verified",
        "S6.delivery-integrity",
        "S6.licence-active",
        "S6.record-retention",
    }
    assert all(f.outcome is Outcome.PASS for f in findings.values())
    integrity = findings["S6.delivery-integrity"]
    assert integrity.evidence["delivered_sha256"] == "b" * 64
    assert integrity.evidence["expected_sha256"] == "b" * 64
    assert integrity.evidence["product_version"] == 1
    assert findings["S6.licence-active"].evidence == {"licence_status": "active"}
    for finding in findings.values():
        json.dumps(finding.as_json())


def test_delivery_hash_in_upper_case_is_the_same_digest() -> None:
    snapshot = delivery_snapshot(delivery=replace(DELIVERY, content_sha256="B" * 64))
    finding = by_check(RULE.evaluate(context(Stage.DELIVERY, snapshot)))["S6.delivery-integrity"]
    assert finding.outcome is Outcome.PASS


def test_delivery_hash_mismatch_fails() -> None:
    snapshot = delivery_snapshot(delivery=replace(DELIVERY, content_sha256="c" * 64))
    finding = by_check(RULE.evaluate(context(Stage.DELIVERY, snapshot)))["S6.delivery-integrity"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["problem"] == "mismatch"
    assert finding.evidence["delivered_sha256"] == "c" * 64
    assert finding.evidence["expected_sha256"] == "b" * 64


def test_delivery_without_a_hash_fails() -> None:
    snapshot = delivery_snapshot(delivery=replace(DELIVERY, content_sha256=None))
    finding = by_check(RULE.evaluate(context(Stage.DELIVERY, snapshot)))["S6.delivery-integrity"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["problem"] == "delivered-hash-missing"


@pytest.mark.parametrize(
    "digest",
    ["b" * 63, "b" * 65, "g" * 64, "b" * 62 + " b", "sha256:" + "b" * 57, "b" * 40],
)
def test_delivery_with_a_malformed_hash_fails(digest: str) -> None:
    snapshot = delivery_snapshot(
        delivery=replace(DELIVERY, content_sha256=digest), product=replace(PRODUCT, content_sha256=digest)
    )
    finding = by_check(RULE.evaluate(context(Stage.DELIVERY, snapshot)))["S6.delivery-integrity"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["problem"] == "delivered-hash-malformed"


def test_delivery_fails_when_the_product_has_no_registered_hash() -> None:
    snapshot = delivery_snapshot(product=replace(PRODUCT, content_sha256=None))
    finding = by_check(RULE.evaluate(context(Stage.DELIVERY, snapshot)))["S6.delivery-integrity"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["problem"] == "product-hash-missing"
    assert finding.evidence["expected_sha256"] is None


def test_delivery_fails_closed_without_a_product() -> None:
    snapshot = delivery_snapshot(product=None)
    finding = by_check(RULE.evaluate(context(Stage.DELIVERY, snapshot)))["S6.delivery-integrity"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["problem"] == "product-hash-missing"


def test_delivery_fails_closed_without_a_delivery_record() -> None:
    findings = by_check(RULE.evaluate(context(Stage.DELIVERY, delivery_snapshot(delivery=None))))
    assert findings["S6.delivery-integrity"].outcome is Outcome.FAIL
    assert findings["S6.delivery-integrity"].evidence["problem"] == "no-delivery"
    assert findings["S6.licence-active"].outcome is Outcome.FAIL
    assert findings["S6.licence-active"].evidence == {"licence_status": None}


@pytest.mark.parametrize("status", ["suspended", "revoked", "expired"])
def test_delivery_under_an_inactive_licence_fails(status: str) -> None:
    snapshot = delivery_snapshot(delivery=replace(DELIVERY, licence_status=status))
    finding = by_check(RULE.evaluate(context(Stage.DELIVERY, snapshot)))["S6.licence-active"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence == {"licence_status": status}


def test_delivery_reverifies_the_parties() -> None:
    snapshot = delivery_snapshot(buyer=replace(BUYER, status="suspended"))
    findings = by_check(RULE.evaluate(context(Stage.DELIVERY, snapshot)))
    assert findings["S6.buyer-verified"].outcome is Outcome.FAIL
    assert findings["S6.delivery-integrity"].outcome is Outcome.PASS


def test_delivery_retention_follows_the_parameter() -> None:
    rule = TradingServiceSecurityStandard({"retention_years": 0})
    finding = by_check(rule.evaluate(context(Stage.DELIVERY, delivery_snapshot())))["S6.record-retention"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["retention_years"] == 0
