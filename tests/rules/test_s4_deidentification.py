"""S4 — GB/T 37964-2019 personal information de-identification: a recognised technique for PI
not sold under consent, no direct-identifier fields, and a sample free of direct identifiers."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest

from marketplace.compliance.contract import Finding, Outcome, Stage
from marketplace.compliance.rulebook import build_rulebook
from marketplace.compliance.snapshots import FieldSpec, ProductFacts, SampleFacts, Snapshot
from marketplace.kit.identifiers import luhn_check_digit, resident_id_check_char
from rules.s4_deidentification import DeidentificationStandard
from tests.rules.snapshots import (
    DELIVERY,
    PRODUCT,
    admission_snapshot,
    context,
    delivery_snapshot,
    listing_snapshot,
    replace,
    trade_snapshot,
)

RULE = DeidentificationStandard()
CHECKS = ["S4.technique-declared", "S4.direct-identifier-fields", "S4.sample-scan"]
NON_PERSONAL_FIELDS = tuple(f for f in PRODUCT.fields if not f.personal)
assert PRODUCT.sample is not None
SAMPLE = PRODUCT.sample

RESIDENT_ID = "52010219900307123" + resident_id_check_char("52010219900307123")
MOBILE = "13812345678"
EMAIL = "zhang.san@example.com"
CARD = "622202123456789012" + luhn_check_digit("622202123456789012")
RAW_VALUES = (RESIDENT_ID, MOBILE, EMAIL, CARD)


def keyed(findings: list[Finding]) -> dict[str, Finding]:
    assert [f.check for f in findings] == CHECKS
    for finding in findings:
        dumped = json.dumps(finding.as_json(), ensure_ascii=False)
        assert not any(raw in dumped for raw in RAW_VALUES), dumped
    return {f.check.removeprefix("S4."): f for f in findings}


def at_listing(product: ProductFacts, rule: DeidentificationStandard = RULE) -> dict[str, Finding]:
    return keyed(rule.evaluate(context(Stage.LISTING, listing_snapshot(product=product))))


def at_delivery(product: ProductFacts, rule: DeidentificationStandard = RULE) -> dict[str, Finding]:
    return keyed(rule.evaluate(context(Stage.DELIVERY, delivery_snapshot(product=product))))


def product_with(**changes: Any) -> ProductFacts:
    return replace(PRODUCT, **changes)


def with_rows(*rows: tuple[str | None, ...], **changes: Any) -> ProductFacts:
    return product_with(sample=replace(SAMPLE, rows=(*SAMPLE.rows, *rows)), **changes)


def non_pi(**changes: Any) -> ProductFacts:
    return product_with(**{"contains_personal_info": False, "fields": NON_PERSONAL_FIELDS, **changes})


def test_declarations() -> None:
    module = importlib.import_module("rules.s4_deidentification")
    assert module.DeidentificationStandard is DeidentificationStandard
    assert RULE.id == "S4"
    assert RULE.stages == frozenset({Stage.LISTING, Stage.DELIVERY})
    assert set(RULE.parameters) == {"techniques", "missing_sample_review"}
    assert "k-anonymity" in RULE.parameters["techniques"]
    assert any("GB/T 37964-2019" in b for b in RULE.basis)


def test_other_stages_yield_nothing() -> None:
    assert RULE.evaluate(context(Stage.TRADE, trade_snapshot())) == []
    assert RULE.evaluate(context(Stage.ADMISSION, admission_snapshot())) == []


# --- pass -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", [Stage.LISTING, Stage.DELIVERY])
def test_realistic_product_passes(stage: Stage) -> None:
    found = at_listing(PRODUCT) if stage is Stage.LISTING else at_delivery(PRODUCT)
    assert all(f.outcome is Outcome.PASS for f in found.values()), found
    assert found["technique-declared"].evidence["recognised"] == ["generalisation", "k-anonymity"]
    scan = found["sample-scan"].evidence
    assert scan["rows_scanned"] == 4
    assert scan["cells_scanned"] == 19  # one null cell is skipped
    assert scan["hits"] == 0


def test_technique_names_are_compared_loosely() -> None:
    found = at_listing(product_with(deidentification_techniques=("K Anonymity",)))["technique-declared"]
    assert found.outcome is Outcome.PASS
    assert found.evidence["recognised"] == ["K Anonymity"]


# --- technique ----------------------------------------------------------------------------------------------


def test_no_technique_fails() -> None:
    found = at_listing(product_with(deidentification_techniques=()))["technique-declared"]
    assert found.outcome is Outcome.FAIL
    assert found.evidence == {"declared": [], "recognised": [], "unrecognised": []}


def test_only_unrecognised_techniques_fail() -> None:
    found = at_listing(product_with(deidentification_techniques=("hashing", "masking")))["technique-declared"]
    assert found.outcome is Outcome.FAIL
    assert found.evidence["unrecognised"] == ["hashing", "masking"]
    assert found.evidence["recognised"] == []


def test_technique_does_not_apply_without_pi_or_under_consent() -> None:
    assert at_listing(non_pi(deidentification_techniques=()))["technique-declared"].outcome is Outcome.NOT_APPLICABLE
    consented = at_listing(product_with(sold_under_consent=True, deidentification_techniques=()))
    assert consented["technique-declared"].outcome is Outcome.NOT_APPLICABLE
    assert consented["technique-declared"].evidence["sold_under_consent"] is True


# --- direct-identifier fields ------------------------------------------------------------------------------------


def test_direct_identifier_field_fails_unless_sold_under_consent() -> None:
    fields = (*PRODUCT.fields, FieldSpec(name="plate_number", personal=True, direct_identifier=True))
    found = at_listing(product_with(fields=fields))["direct-identifier-fields"]
    assert found.outcome is Outcome.FAIL
    assert found.evidence == {"direct_identifier_fields": ["plate_number"], "sold_under_consent": False}
    consented = at_listing(product_with(fields=fields, sold_under_consent=True))["direct-identifier-fields"]
    assert consented.outcome is Outcome.NOT_APPLICABLE


def test_direct_identifier_field_fails_even_when_the_product_claims_no_pi() -> None:
    fields = (*NON_PERSONAL_FIELDS, FieldSpec(name="driver_id", direct_identifier=True))
    found = at_listing(non_pi(fields=fields))
    assert found["direct-identifier-fields"].outcome is Outcome.FAIL
    # A direct identifier is personal information: the technique check applies too.
    assert found["technique-declared"].outcome is Outcome.PASS


# --- sample scan -------------------------------------------------------------------------------------------------


def test_identifiers_in_the_sample_fail_with_masked_evidence() -> None:
    product = with_rows(
        ("GY-0005", "2026-10-01T08:10:00+08:00", "30.1", "99", f"id {RESIDENT_ID}"),
        ("GY-0006", MOBILE, "30.1", "99", "30-39"),
        ("GY-0007", "2026-10-01T08:10:00+08:00", EMAIL, CARD, "30-39"),
    )
    found = at_listing(product)["sample-scan"]
    assert found.outcome is Outcome.FAIL
    evidence = found.evidence
    assert evidence["counts"] == {"bank_card": 1, "email": 1, "mobile": 1, "resident_id": 1}
    assert evidence["hits"] == 4
    assert evidence["columns"] == ["timestamp", "avg_speed_kmh", "vehicle_count", "age_band"]
    assert evidence["rows_scanned"] == 7
    examples = evidence["examples"]
    assert [e["kind"] for e in examples] == ["resident_id", "mobile", "email", "bank_card"]
    assert examples[0] == {
        "kind": "resident_id",
        "column": "age_band",
        "row": 5,
        "value_masked": "520*************" + RESIDENT_ID[-2:],
    }
    assert examples[1]["value_masked"] == "138******78"


def test_at_most_five_examples() -> None:
    rows = [("GY-1", f"1390000000{i}", "1", "1", "20-29") for i in range(7)]
    found = at_listing(with_rows(*rows))["sample-scan"]
    assert found.outcome is Outcome.FAIL
    assert found.evidence["hits"] == 7
    assert found.evidence["counts"] == {"mobile": 7}
    assert found.evidence["columns"] == ["timestamp"]
    assert len(found.evidence["examples"]) == 5


def test_cells_beyond_the_column_list_are_scanned_and_named_by_position() -> None:
    found = at_listing(with_rows(("GY-9", "t", "1", "1", "20-29", EMAIL)))["sample-scan"]
    assert found.outcome is Outcome.FAIL
    assert found.evidence["columns"] == ["#6"]


def test_sample_is_scanned_even_for_a_product_claiming_no_pi() -> None:
    found = at_listing(non_pi(sample=replace(SAMPLE, rows=(("GY-1", MOBILE, "1", "1"),))))["sample-scan"]
    assert found.outcome is Outcome.FAIL
    assert found.evidence["counts"] == {"mobile": 1}


def test_delivery_rescans_a_changed_product() -> None:
    changed = with_rows(("GY-0008", "2026-10-01T08:15:00+08:00", "30.1", "99", EMAIL))
    found = at_delivery(changed)["sample-scan"]
    assert found.outcome is Outcome.FAIL
    assert found.evidence["counts"] == {"email": 1}


# --- missing sample ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sample", [None, replace(SAMPLE, rows=())])
def test_pi_product_without_sample_rows_fails(sample: SampleFacts | None) -> None:
    found = at_listing(product_with(sample=sample))["sample-scan"]
    assert found.outcome is Outcome.FAIL
    assert found.evidence["rows_scanned"] == 0
    assert found.evidence["sample"] is (sample is not None)
    assert at_delivery(product_with(sample=sample))["sample-scan"].outcome is Outcome.FAIL


def test_product_without_pi_and_without_sample_is_not_applicable() -> None:
    found = at_listing(non_pi(sample=None))["sample-scan"]
    assert found.outcome is Outcome.NOT_APPLICABLE


def test_no_product_fails_every_check() -> None:
    listing = RULE.evaluate(context(Stage.LISTING, Snapshot()))
    assert [f.check for f in listing] == CHECKS
    assert all(f.outcome is Outcome.FAIL for f in listing)
    delivery = RULE.evaluate(context(Stage.DELIVERY, Snapshot(delivery=DELIVERY)))
    assert all(f.outcome is Outcome.FAIL for f in delivery)


# --- parameters ----------------------------------------------------------------------------------------------------


def test_missing_sample_goes_to_review_when_configured() -> None:
    config = {"rules": {"S4": {"parameters": {"missing_sample_review": True}}}}
    active = build_rulebook({"S4": DeidentificationStandard}, config).get("S4")
    assert active is not None
    assert isinstance(active.rule, DeidentificationStandard)
    assert at_listing(product_with(sample=None), active.rule)["sample-scan"].outcome is Outcome.REVIEW


def test_techniques_parameter_changes_the_outcome() -> None:
    rule = DeidentificationStandard({"techniques": ["suppression"]})
    found = at_listing(PRODUCT, rule)["technique-declared"]
    assert found.outcome is Outcome.FAIL
    assert found.evidence["unrecognised"] == ["generalisation", "k-anonymity"]
    hashing = DeidentificationStandard({"techniques": ["hashing"]})
    assert (
        at_listing(product_with(deidentification_techniques=("hashing",)), hashing)["technique-declared"].outcome
        is Outcome.PASS
    )
