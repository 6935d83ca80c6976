"""S1 — GB 32100-2015 unified social credit code: structure, check character, registration
authority and division part, for every organisation at admission and trade."""

from __future__ import annotations

import importlib
import json

import pytest

from marketplace.compliance.contract import Finding, Outcome, Stage
from marketplace.compliance.rulebook import build_rulebook
from marketplace.compliance.snapshots import OrganizationFacts, Snapshot
from marketplace.kit.identifiers import uscc_check_char
from rules.s1_uscc import UnifiedSocialCreditCodeStandard
from tests.rules.snapshots import (
    BUYER,
    INTERMEDIARY,
    PROVIDER,
    admission_snapshot,
    context,
    listing_snapshot,
    replace,
    trade_snapshot,
)

RULE = UnifiedSocialCreditCodeStandard()
STRUCTURE = {"S1.length", "S1.alphabet", "S1.check-character"}


def valid(first17: str) -> str:
    """A USCC with the right check character for its first 17 characters."""
    return first17 + uscc_check_char(first17)


def of(findings: list[Finding], check: str, party: str | None = None) -> Finding:
    matching = [f for f in findings if f.check == f"S1.{check}" and (party is None or f.evidence.get("party") == party)]
    assert len(matching) == 1, (check, party, findings)
    return matching[0]


def structure(findings: list[Finding], party: str) -> Finding:
    matching = [f for f in findings if f.check in STRUCTURE and f.evidence.get("party") == party]
    assert len(matching) == 1, (party, findings)
    return matching[0]


def admit(org: OrganizationFacts, rule: UnifiedSocialCreditCodeStandard = RULE) -> list[Finding]:
    return rule.evaluate(context(Stage.ADMISSION, admission_snapshot(org)))


def admit_code(code: str, rule: UnifiedSocialCreditCodeStandard = RULE) -> list[Finding]:
    return admit(replace(PROVIDER, status="pending", uscc=code), rule)


def trade(snapshot: Snapshot, rule: UnifiedSocialCreditCodeStandard = RULE) -> list[Finding]:
    return rule.evaluate(context(Stage.TRADE, snapshot))


# --- declarations ---------------------------------------------------------------------------


def test_declarations() -> None:
    module = importlib.import_module("rules.s1_uscc")
    assert module.UnifiedSocialCreditCodeStandard is UnifiedSocialCreditCodeStandard
    assert RULE.id == "S1"
    assert RULE.version == "1.0.0"
    assert RULE.stages == frozenset({Stage.ADMISSION, Stage.TRADE})
    assert set(RULE.parameters) == {
        "registration_authorities",
        "check_division_code",
        "unknown_division_fails",
        "extra_division_codes",
    }
    assert any("GB 32100-2015" in b for b in RULE.basis)


def test_other_stages_yield_nothing() -> None:
    assert RULE.evaluate(context(Stage.LISTING, listing_snapshot())) == []


# --- pass -------------------------------------------------------------------------------------


def test_admission_passes_for_the_realistic_applicant() -> None:
    findings = admit(replace(PROVIDER, status="pending"))
    assert [f.check for f in findings] == [
        "S1.applicant",
        "S1.check-character",
        "S1.registration-authority",
        "S1.division-code",
    ]
    assert all(f.outcome is Outcome.PASS for f in findings)
    assert of(findings, "check-character").evidence["uscc"] == PROVIDER.uscc
    authority = of(findings, "registration-authority").evidence
    assert (authority["authority"], authority["category"]) == ("9", "1")
    division = of(findings, "division-code").evidence
    assert division["division"] == "520100"
    assert division["known"] is True
    assert division["division_name"] == "贵阳市"
    for finding in findings:
        json.dumps(finding.as_json())


def test_trade_checks_every_party() -> None:
    findings = trade(trade_snapshot(intermediary=INTERMEDIARY))
    assert len(findings) == 1 + 3 * 3
    assert all(f.outcome is Outcome.PASS for f in findings), findings
    assert of(findings, "parties").evidence["missing"] == []
    for party, org in (("provider", PROVIDER), ("buyer", BUYER), ("intermediary", INTERMEDIARY)):
        found = of(findings, "check-character", party)
        assert found.evidence["organization_id"] == org.id
        assert found.evidence["uscc"] == org.uscc
        assert of(findings, "division-code", party).outcome is Outcome.PASS
    assert of(findings, "division-code", "buyer").evidence["division"] == "520300"


def test_repeated_evaluation_gives_the_same_findings() -> None:
    rule = UnifiedSocialCreditCodeStandard()
    snapshot = trade_snapshot()
    first = trade(snapshot, rule)
    assert trade(snapshot, rule) == first
    # Nothing carries over between evaluations: a changed code is judged afresh.
    wrong = "Y" if BUYER.uscc[17] != "Y" else "X"
    bad = trade(trade_snapshot(buyer=replace(BUYER, uscc=BUYER.uscc[:17] + wrong)), rule)
    assert structure(bad, "buyer").outcome is Outcome.FAIL
    assert trade(snapshot, rule) == first


# --- structure failures ------------------------------------------------------------------------


def test_length_failure() -> None:
    short = BUYER.uscc[:17]
    findings = trade(trade_snapshot(buyer=replace(BUYER, uscc=short)))
    found = structure(findings, "buyer")
    assert found.check == "S1.length"
    assert found.outcome is Outcome.FAIL
    assert found.evidence["party"] == "buyer"
    assert found.evidence["problem"] == "length"
    assert (found.evidence["expected"], found.evidence["found"]) == (18, 17)
    # The parts of a malformed code cannot be read.
    assert of(findings, "registration-authority", "buyer").outcome is Outcome.NOT_APPLICABLE
    assert of(findings, "division-code", "buyer").outcome is Outcome.NOT_APPLICABLE
    # The provider is unaffected.
    assert structure(findings, "provider").outcome is Outcome.PASS


def test_empty_code_is_a_length_failure() -> None:
    found = structure(admit_code(""), "organization")
    assert found.check == "S1.length"
    assert found.evidence["found"] == 0


@pytest.mark.parametrize(
    ("code", "positions"),
    [
        ("91520100MA6E1T0AIX", [17]),  # I is not in the alphabet
        ("91520100ma6e1t0a0x", [9, 10, 12, 14, 16, 18]),  # lower case is not canonical
    ],
)
def test_alphabet_failure(code: str, positions: list[int]) -> None:
    findings = admit_code(code)
    found = structure(findings, "organization")
    assert found.check == "S1.alphabet"
    assert found.outcome is Outcome.FAIL
    assert found.evidence["problem"] == "alphabet"
    assert [item["position"] for item in found.evidence["invalid"]] == positions
    assert of(findings, "registration-authority").outcome is Outcome.NOT_APPLICABLE


def test_check_character_failure() -> None:
    right = BUYER.uscc[17]
    wrong = "Y" if right != "Y" else "X"
    findings = trade(trade_snapshot(buyer=replace(BUYER, uscc=BUYER.uscc[:17] + wrong)))
    found = structure(findings, "buyer")
    assert found.check == "S1.check-character"
    assert found.outcome is Outcome.FAIL
    assert found.evidence == {
        "party": "buyer",
        "organization_id": "org-buyer",
        "problem": "check_character",
        "uscc": BUYER.uscc[:17] + wrong,
        "expected": right,
        "found": wrong,
    }
    # The parts are still read: a wrong check character may hide any typo.
    assert of(findings, "registration-authority", "buyer").outcome is Outcome.PASS


# --- registration authority ----------------------------------------------------------------------


def test_unknown_registration_authority_fails() -> None:
    found = of(admit_code(valid("B1520100MA6E1T0A0")), "registration-authority")
    assert found.outcome is Outcome.FAIL
    assert found.evidence["authority"] == "B"
    assert "9" in found.evidence["known_authorities"]


def test_category_the_authority_does_not_issue_fails() -> None:
    found = of(admit_code(valid("95520100MA6E1T0A0")), "registration-authority")
    assert found.outcome is Outcome.FAIL
    assert (found.evidence["authority"], found.evidence["category"]) == ("9", "5")
    assert found.evidence["known_categories"] == ["1", "2", "3", "9"]


@pytest.mark.parametrize("prefix", ["11", "52", "53", "92", "93", "N2", "Y1"])
def test_known_authorities_and_categories_pass(prefix: str) -> None:
    found = of(admit_code(valid(prefix + "520100MA6E1T0A0")), "registration-authority")
    assert found.outcome is Outcome.PASS


# --- division part --------------------------------------------------------------------------------


def test_unknown_division_goes_to_review() -> None:
    code = valid("91529999MA6E1T0A0")
    findings = admit_code(code)
    assert structure(findings, "organization").outcome is Outcome.PASS
    found = of(findings, "division-code")
    assert found.outcome is Outcome.REVIEW
    assert found.evidence["division"] == "529999"
    assert found.evidence["known"] is False


def test_letters_in_the_division_part_go_to_review() -> None:
    found = of(admit_code(valid("9152A100MA6E1T0A0")), "division-code")
    assert found.outcome is Outcome.REVIEW
    assert found.evidence["division"] == "52A100"


def test_national_level_division_is_accepted() -> None:
    found = of(admit_code(valid("11100000MA6E1T0A0")), "division-code")
    assert found.outcome is Outcome.PASS
    assert found.evidence["source"] == "extra_division_codes"


# --- missing parts (fail closed) --------------------------------------------------------------------


def test_admission_without_applicant_fails() -> None:
    findings = RULE.evaluate(context(Stage.ADMISSION, Snapshot()))
    assert len(findings) == 1
    assert findings[0].check == "S1.applicant"
    assert findings[0].outcome is Outcome.FAIL


def test_trade_without_buyer_fails_and_still_checks_the_provider() -> None:
    findings = trade(Snapshot(provider=PROVIDER))
    parties = of(findings, "parties")
    assert parties.outcome is Outcome.FAIL
    assert parties.evidence["missing"] == ["buyer"]
    assert structure(findings, "provider").outcome is Outcome.PASS


def test_trade_without_parties_fails() -> None:
    parties = of(trade(Snapshot()), "parties")
    assert parties.outcome is Outcome.FAIL
    assert parties.evidence["missing"] == ["provider", "buyer"]


# --- parameters --------------------------------------------------------------------------------------


def test_unknown_division_fails_when_configured() -> None:
    rule = UnifiedSocialCreditCodeStandard({"unknown_division_fails": True})
    found = of(admit_code(valid("91529999MA6E1T0A0"), rule), "division-code")
    assert found.outcome is Outcome.FAIL
    assert found.evidence["division"] == "529999"


def test_division_check_can_be_disabled() -> None:
    rule = UnifiedSocialCreditCodeStandard({"check_division_code": False})
    found = of(admit_code(valid("91529999MA6E1T0A0"), rule), "division-code")
    assert found.outcome is Outcome.NOT_APPLICABLE
    assert found.evidence["check_division_code"] is False


def test_parameters_through_the_rulebook() -> None:
    config = {
        "rules": {
            "S1": {
                "parameters": {
                    "extra_division_codes": [],
                    "registration_authorities": {"9": ["1"], "Y": ["1"]},
                }
            }
        }
    }
    rulebook = build_rulebook({"S1": UnifiedSocialCreditCodeStandard}, config)
    active = rulebook.get("S1")
    assert active is not None
    rule = active.rule
    assert isinstance(rule, UnifiedSocialCreditCodeStandard)
    # 100000 is no longer accepted: review instead of pass.
    assert of(admit_code(valid("91100000MA6E1T0A0"), rule), "division-code").outcome is Outcome.REVIEW
    # A farmers' cooperative (93) is no longer a known category.
    assert of(admit_code(valid("93520100MA6E1T0A0"), rule), "registration-authority").outcome is Outcome.FAIL
    assert of(admit_code(valid("93520100MA6E1T0A0")), "registration-authority").outcome is Outcome.PASS
