"""S8 — GB/T 2260 division codes: product region coverage and the provider's jurisdiction at
listing, the buyer's jurisdiction (domestic or foreign) at trade."""

from __future__ import annotations

import json

import pytest

from marketplace.compliance.contract import Outcome, Stage
from marketplace.compliance.snapshots import Snapshot
from rules.s8_division_codes import DivisionCodesStandard
from tests.rules.snapshots import (
    BUYER,
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

RULE = DivisionCodesStandard()


def listing_regions(*regions: str) -> Snapshot:
    return listing_snapshot(product=replace(PRODUCT, regions=regions))


def test_declarations() -> None:
    assert RULE.id == "S8"
    assert RULE.stages == frozenset({Stage.LISTING, Stage.TRADE})
    assert RULE.parameters == {"region_levels": ["province", "prefecture", "county"]}


def test_other_stages_yield_nothing() -> None:
    assert RULE.evaluate(context(Stage.ADMISSION, admission_snapshot())) == []
    assert RULE.evaluate(context(Stage.DELIVERY, delivery_snapshot())) == []


def test_unknown_region_level_in_the_parameters_is_refused() -> None:
    with pytest.raises(ValueError, match="region_levels"):
        DivisionCodesStandard({"region_levels": ["city"]})


# --- listing --------------------------------------------------------------------------------


def test_listing_passes_for_the_realistic_snapshot() -> None:
    findings = by_check(RULE.evaluate(context(Stage.LISTING, listing_snapshot())))
    assert set(findings) == {"S8.region-coverage", "S8.provider-jurisdiction"}
    assert all(f.outcome is Outcome.PASS for f in findings.values())
    regions = findings["S8.region-coverage"].evidence
    assert regions["regions"] == ["520100", "520300"]
    assert regions["unknown"] == []
    assert regions["names"] == {"520100": "贵阳市", "520300": "遵义市"}
    provider = findings["S8.provider-jurisdiction"].evidence
    assert provider["jurisdiction"] == "520100"
    assert provider["scope"] == "domestic"
    assert provider["name"] == "贵阳市"
    for finding in findings.values():
        json.dumps(finding.as_json())


def test_province_and_county_codes_pass() -> None:
    finding = by_check(RULE.evaluate(context(Stage.LISTING, listing_regions("520000", "520102"))))
    assert finding["S8.region-coverage"].outcome is Outcome.PASS


def test_unknown_regions_fail_and_are_listed() -> None:
    snapshot = listing_regions("520100", "529999", "52010", "CN", "529999")
    finding = by_check(RULE.evaluate(context(Stage.LISTING, snapshot)))["S8.region-coverage"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["unknown"] == ["529999", "52010", "CN"]
    assert finding.evidence["names"] == {"520100": "贵阳市"}


def test_no_regions_fails() -> None:
    finding = by_check(RULE.evaluate(context(Stage.LISTING, listing_regions())))["S8.region-coverage"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["regions"] == []


def test_listing_fails_closed_without_product_or_provider() -> None:
    findings = by_check(RULE.evaluate(context(Stage.LISTING, Snapshot())))
    assert findings["S8.region-coverage"].outcome is Outcome.FAIL
    assert findings["S8.provider-jurisdiction"].outcome is Outcome.FAIL
    assert findings["S8.provider-jurisdiction"].evidence["jurisdiction"] is None


@pytest.mark.parametrize("jurisdiction", ["529999", "ZZ", "cn", "", "Guiyang"])
def test_unknown_provider_jurisdiction_fails(jurisdiction: str) -> None:
    snapshot = listing_snapshot(provider=replace(PROVIDER, jurisdiction=jurisdiction))
    finding = by_check(RULE.evaluate(context(Stage.LISTING, snapshot)))["S8.provider-jurisdiction"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["jurisdiction"] == jurisdiction
    assert finding.evidence["scope"] is None


def test_region_levels_parameter_sends_province_coverage_to_review() -> None:
    snapshot = listing_regions("520000", "520100")
    assert by_check(RULE.evaluate(context(Stage.LISTING, snapshot)))["S8.region-coverage"].outcome is Outcome.PASS
    rule = DivisionCodesStandard({"region_levels": ["prefecture", "county"]})
    finding = by_check(rule.evaluate(context(Stage.LISTING, snapshot)))["S8.region-coverage"]
    assert finding.outcome is Outcome.REVIEW
    assert finding.evidence["other_level"] == ["520000"]
    assert finding.evidence["region_levels"] == ["county", "prefecture"]


def test_unknown_regions_fail_before_level_review() -> None:
    rule = DivisionCodesStandard({"region_levels": ["county"]})
    finding = by_check(rule.evaluate(context(Stage.LISTING, listing_regions("520000", "529999"))))
    assert finding["S8.region-coverage"].outcome is Outcome.FAIL


# --- trade ----------------------------------------------------------------------------------


def test_trade_passes_for_the_realistic_snapshot() -> None:
    findings = by_check(RULE.evaluate(context(Stage.TRADE, trade_snapshot())))
    assert set(findings) == {"S8.buyer-jurisdiction"}
    finding = findings["S8.buyer-jurisdiction"]
    assert finding.outcome is Outcome.PASS
    assert finding.evidence["jurisdiction"] == "520300"
    assert finding.evidence["scope"] == "domestic"
    assert finding.evidence["name"] == "遵义市"
    assert finding.evidence["organization_id"] == BUYER.id
    json.dumps(finding.as_json())


@pytest.mark.parametrize(
    ("jurisdiction", "scope", "name"),
    [
        ("CN", "domestic", "China"),
        ("SG", "foreign", "Singapore"),
        ("HK", "foreign", "Hong Kong"),
        ("810000", "foreign", "香港特别行政区"),
        ("520102", "domestic", "南明区"),
    ],
)
def test_buyer_scope_is_reported(jurisdiction: str, scope: str, name: str) -> None:
    snapshot = trade_snapshot(buyer=replace(BUYER, jurisdiction=jurisdiction))
    finding = by_check(RULE.evaluate(context(Stage.TRADE, snapshot)))["S8.buyer-jurisdiction"]
    assert finding.outcome is Outcome.PASS
    assert finding.evidence["scope"] == scope
    assert finding.evidence["name"].startswith(name)


@pytest.mark.parametrize("jurisdiction", ["529999", "XX", "us", "USA", ""])
def test_unknown_buyer_jurisdiction_fails(jurisdiction: str) -> None:
    snapshot = trade_snapshot(buyer=replace(BUYER, jurisdiction=jurisdiction))
    finding = by_check(RULE.evaluate(context(Stage.TRADE, snapshot)))["S8.buyer-jurisdiction"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["jurisdiction"] == jurisdiction
    assert finding.evidence["scope"] is None


def test_trade_fails_closed_without_a_buyer() -> None:
    finding = by_check(RULE.evaluate(context(Stage.TRADE, trade_snapshot(buyer=None))))["S8.buyer-jurisdiction"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence == {"role": "buyer", "jurisdiction": None, "scope": None}


def test_no_not_applicable_outcome() -> None:
    # Region coverage and both jurisdictions are needed for every listing and trade.
    outcomes = {f.outcome for f in RULE.evaluate(context(Stage.LISTING, listing_snapshot()))}
    outcomes |= {f.outcome for f in RULE.evaluate(context(Stage.TRADE, trade_snapshot()))}
    assert Outcome.NOT_APPLICABLE not in outcomes
