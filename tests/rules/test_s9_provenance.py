"""S9 — GB/T 34945-2017 data provenance: source entity, activities with performers and sane
times, and a derivation chain for data obtained from others."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from marketplace.compliance.contract import Finding, Outcome, Stage
from marketplace.compliance.snapshots import Provenance, ProvenanceActivity, Snapshot
from rules.s9_provenance import ProvenanceStandard
from tests.rules.snapshots import (
    NOW,
    PRODUCT,
    PROVIDER,
    admission_snapshot,
    by_check,
    context,
    listing_snapshot,
    replace,
    trade_snapshot,
)

RULE = ProvenanceStandard()
CHECKS = {"S9.source-entity", "S9.activities", "S9.activity-times", "S9.derivation-chain"}


def _base_provenance() -> Provenance:
    assert PRODUCT.provenance is not None
    return PRODUCT.provenance


BASE = _base_provenance()


def listing_with(provenance: Provenance | None = BASE, **product: Any) -> Snapshot:
    return listing_snapshot(product=replace(PRODUCT, provenance=provenance, **product))


def evaluate(snapshot: Snapshot, rule: ProvenanceStandard = RULE) -> dict[str, Finding]:
    return by_check(rule.evaluate(context(Stage.LISTING, snapshot)))


def activity(
    name: str, started: datetime, ended: datetime | None = None, by: str = "org-provider"
) -> ProvenanceActivity:
    return ProvenanceActivity(name=name, performed_by=by, started_at=started, ended_at=ended)


def test_declarations() -> None:
    assert RULE.id == "S9"
    assert RULE.stages == frozenset({Stage.LISTING})
    assert RULE.parameters == {"derivation_required_for": ["purchased", "authorized_public"]}


def test_other_stages_yield_nothing() -> None:
    assert RULE.evaluate(context(Stage.TRADE, trade_snapshot())) == []
    assert RULE.evaluate(context(Stage.ADMISSION, admission_snapshot())) == []


def test_unknown_data_source_in_the_parameters_is_refused() -> None:
    with pytest.raises(ValueError, match="derivation_required_for"):
        ProvenanceStandard({"derivation_required_for": ["bought"]})


def test_listing_passes_for_the_realistic_snapshot() -> None:
    findings = evaluate(listing_snapshot())
    assert set(findings) == CHECKS
    assert findings["S9.source-entity"].outcome is Outcome.PASS
    assert findings["S9.source-entity"].evidence["source_entity"] == BASE.source_entity
    assert findings["S9.activities"].outcome is Outcome.PASS
    assert findings["S9.activities"].evidence == {"activity_count": 2, "incomplete": []}
    times = findings["S9.activity-times"]
    assert times.outcome is Outcome.PASS
    assert times.evidence["activity_count"] == 2
    assert times.evidence["in_future"] == []
    assert times.evidence["now"] == NOW.isoformat()
    # Self-generated data: no chain is required and none is recorded.
    chain = findings["S9.derivation-chain"]
    assert chain.outcome is Outcome.NOT_APPLICABLE
    assert chain.evidence["data_source"] == "self_generated"
    assert chain.evidence["required"] is False
    for finding in findings.values():
        json.dumps(finding.as_json())


def test_missing_product_fails_every_check() -> None:
    findings = evaluate(Snapshot(provider=PROVIDER))
    assert set(findings) == CHECKS
    assert all(f.outcome is Outcome.FAIL for f in findings.values())


def test_missing_provenance_fails_once() -> None:
    findings = evaluate(listing_with(None))
    assert findings["S9.source-entity"].outcome is Outcome.FAIL
    assert findings["S9.source-entity"].evidence == {"provenance": False}
    for check in ("S9.activities", "S9.activity-times"):
        assert (findings[check].outcome, findings[check].follows_from) == (Outcome.NOT_APPLICABLE, "S9.source-entity")
    assert findings["S9.derivation-chain"].outcome is Outcome.NOT_APPLICABLE
    assert findings["S9.derivation-chain"].follows_from is None  # not required of this source either way


def test_missing_provenance_of_purchased_data_takes_the_chain_with_it() -> None:
    findings = evaluate(listing_with(None, data_source="purchased"))
    assert [check for check, f in findings.items() if f.outcome is Outcome.FAIL] == ["S9.source-entity"]
    assert findings["S9.derivation-chain"].follows_from == "S9.source-entity"


@pytest.mark.parametrize("source", ["", "   "])
def test_unnamed_source_entity_fails(source: str) -> None:
    findings = evaluate(listing_with(replace(BASE, source_entity=source)))
    assert findings["S9.source-entity"].outcome is Outcome.FAIL
    assert findings["S9.source-entity"].evidence == {"source_entity": None}


def test_no_activities_fails() -> None:
    findings = evaluate(listing_with(replace(BASE, activities=())))
    assert findings["S9.activities"].outcome is Outcome.FAIL
    assert findings["S9.activities"].evidence == {"activity_count": 0, "incomplete": []}
    assert findings["S9.activity-times"].outcome is Outcome.FAIL
    assert findings["S9.activity-times"].evidence["activity_count"] == 0


def test_activity_without_name_or_performer_fails() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    activities = (
        activity("collection", start),
        activity("cleaning", start, by=" "),
        activity("", start),
    )
    finding = evaluate(listing_with(replace(BASE, activities=activities)))["S9.activities"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["activity_count"] == 3
    assert finding.evidence["incomplete"] == [
        {"activity": "cleaning", "missing": ["performed_by"]},
        {"activity": "#3", "missing": ["name"]},
    ]


def test_activity_times_in_the_future_fail() -> None:
    activities = (
        activity("collection", NOW - timedelta(days=30), NOW - timedelta(days=1)),
        activity("publication", NOW + timedelta(hours=1)),
        activity("aggregation", NOW - timedelta(days=1), NOW + timedelta(days=1)),
    )
    finding = evaluate(listing_with(replace(BASE, activities=activities)))["S9.activity-times"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["in_future"] == ["publication", "aggregation"]
    assert finding.evidence["ended_before_started"] == []
    assert finding.evidence["activity_count"] == 3


def test_activity_ending_before_it_starts_fails() -> None:
    activities = (activity("cleaning", datetime(2026, 5, 2, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)),)
    finding = evaluate(listing_with(replace(BASE, activities=activities)))["S9.activity-times"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["ended_before_started"] == ["cleaning"]
    assert finding.evidence["in_future"] == []


def test_activity_times_at_now_and_zero_length_pass() -> None:
    activities = (activity("snapshot", NOW, NOW),)
    finding = evaluate(listing_with(replace(BASE, activities=activities)))["S9.activity-times"]
    assert finding.outcome is Outcome.PASS


def test_naive_times_are_read_as_utc() -> None:
    naive_now = NOW.replace(tzinfo=None)
    activities = (
        activity("collection", naive_now - timedelta(hours=1)),
        activity("publication", naive_now + timedelta(hours=1)),
    )
    finding = evaluate(listing_with(replace(BASE, activities=activities)))["S9.activity-times"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["in_future"] == ["publication"]


def test_times_are_judged_against_ctx_now() -> None:
    snapshot = listing_snapshot()
    # Before the de-identification started (2026-11-01), the same record lies in the future.
    earlier = context(Stage.LISTING, snapshot, now=datetime(2026, 10, 15, tzinfo=UTC))
    finding = by_check(RULE.evaluate(earlier))["S9.activity-times"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["in_future"] == ["collection", "de-identification"]


@pytest.mark.parametrize("source", ["purchased", "authorized_public"])
def test_purchased_or_authorised_data_without_a_chain_fails(source: str) -> None:
    finding = evaluate(listing_with(BASE, data_source=source))["S9.derivation-chain"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["data_source"] == source
    assert finding.evidence["required"] is True
    assert finding.evidence["count"] == 0


def test_purchased_data_with_a_chain_passes() -> None:
    chain = ("dataset:gy-traffic-raw-2026", "product:vendor-42/v3")
    finding = evaluate(listing_with(replace(BASE, derived_from=chain), data_source="purchased"))["S9.derivation-chain"]
    assert finding.outcome is Outcome.PASS
    assert finding.evidence["derived_from"] == list(chain)
    assert finding.evidence["count"] == 2


def test_chain_with_blank_entries_fails() -> None:
    chain = ("dataset:gy-traffic-raw-2026", " ")
    finding = evaluate(listing_with(replace(BASE, derived_from=chain), data_source="authorized_public"))[
        "S9.derivation-chain"
    ]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["blank_entries"] == [2]


def test_recorded_chain_of_self_generated_data_passes() -> None:
    finding = evaluate(listing_with(replace(BASE, derived_from=("dataset:sensor-feed",))))["S9.derivation-chain"]
    assert finding.outcome is Outcome.PASS
    assert finding.evidence["required"] is False


def test_undeclared_data_source_leaves_the_chain_not_applicable() -> None:
    finding = evaluate(listing_with(BASE, data_source=None))["S9.derivation-chain"]
    assert finding.outcome is Outcome.NOT_APPLICABLE
    assert finding.evidence["data_source"] is None


def test_derivation_required_for_parameter_changes_the_outcome() -> None:
    snapshot = listing_with(BASE, data_source="public_collection")
    assert evaluate(snapshot)["S9.derivation-chain"].outcome is Outcome.NOT_APPLICABLE
    stricter = ProvenanceStandard({"derivation_required_for": ["purchased", "authorized_public", "public_collection"]})
    finding = evaluate(snapshot, stricter)["S9.derivation-chain"]
    assert finding.outcome is Outcome.FAIL
    assert finding.evidence["required"] is True
