"""The engine's decision, determinism and fail-closed behaviour, over generated rule sets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.compliance.contract import Decision, Outcome, Rule, Severity, Stage
from marketplace.compliance.engine import decide, evaluate
from marketplace.compliance.rulebook import build_rulebook
from marketplace.compliance.snapshots import Snapshot
from tests.compliance.toy_rules import RaisingRule, toy_rule

NOW = datetime(2026, 11, 22, tzinfo=UTC)
SNAPSHOT = Snapshot()

outcomes = st.lists(st.sampled_from(list(Outcome)), max_size=4)
rule_specs = st.dictionaries(
    st.from_regex(r"V[0-9]{1,2}", fullmatch=True),
    st.tuples(st.sampled_from(list(Severity)), outcomes),
    max_size=6,
)


def rulebook_of(specs: dict[str, tuple[Severity, list[Outcome]]], extra: dict[str, type[Rule]] | None = None):
    classes = {rid: toy_rule(rid, outs, severity=sev) for rid, (sev, outs) in specs.items()}
    classes.update(extra or {})
    return build_rulebook(classes, {})


def reference_decision(specs: dict[str, tuple[Severity, list[Outcome]]]) -> Decision:
    """The documented function, written out differently from the engine's loop."""
    judged = [(sev, out) for sev, outs in specs.values() for out in outs]
    if any(sev is Severity.BLOCK and out is Outcome.FAIL for sev, out in judged):
        return Decision.REJECTED
    if any(
        (sev is Severity.REVIEW and out is Outcome.FAIL) or (sev is not Severity.WARN and out is Outcome.REVIEW)
        for sev, out in judged
    ):
        return Decision.REVIEW
    return Decision.ACCEPTED


@settings(max_examples=300)
@given(rule_specs)
def test_decision_is_the_documented_function_of_the_findings(specs) -> None:
    verdict = evaluate(rulebook_of(specs), Stage.TRADE, SNAPSHOT, NOW)
    assert verdict.decision == reference_decision(specs)
    assert len(verdict.findings) == sum(len(outs) for _, outs in specs.values())


@settings(max_examples=200)
@given(rule_specs)
def test_same_snapshot_and_rulebook_give_the_same_verdict_and_fingerprint(specs) -> None:
    first = evaluate(rulebook_of(specs), Stage.LISTING, SNAPSHOT, NOW)
    second = evaluate(rulebook_of(specs), Stage.LISTING, SNAPSHOT, NOW)
    assert first == second
    assert first.rulebook_fingerprint == second.rulebook_fingerprint


@settings(max_examples=200)
@given(rule_specs, st.sampled_from(list(Severity)), st.integers(0, 3))
def test_adding_a_passing_rule_never_changes_the_decision(specs, severity, passes) -> None:
    before = evaluate(rulebook_of(specs), Stage.TRADE, SNAPSHOT, NOW)
    passing = toy_rule("W-PASSING", [Outcome.PASS] * passes + [Outcome.NOT_APPLICABLE], severity=severity)
    after = evaluate(rulebook_of(specs, {"W-PASSING": passing}), Stage.TRADE, SNAPSHOT, NOW)
    assert after.decision == before.decision
    assert before.rulebook_fingerprint != after.rulebook_fingerprint


@settings(max_examples=200)
@given(rule_specs.filter(bool), st.data())
def test_disabling_a_rule_changes_the_fingerprint(specs, data) -> None:
    rule_id = data.draw(st.sampled_from(sorted(specs)))
    classes = {rid: toy_rule(rid, outs, severity=sev) for rid, (sev, outs) in specs.items()}
    enabled = build_rulebook(classes, {})
    disabled = build_rulebook(classes, {"rules": {rule_id: {"enabled": False}}})
    assert enabled.fingerprint != disabled.fingerprint
    assert disabled.disabled == (rule_id,)
    assert rule_id not in [a.rule.id for a in disabled.rules]


@settings(max_examples=100)
@given(rule_specs, st.sampled_from(list(Severity)))
def test_a_rule_that_raises_rejects_whatever_its_severity(specs, severity) -> None:
    classes = {rid: toy_rule(rid, outs, severity=sev) for rid, (sev, outs) in specs.items()}
    classes["X-RAISES"] = RaisingRule
    rulebook = build_rulebook(classes, {"rules": {"X-RAISES": {"severity": severity.value}}})
    verdict = evaluate(rulebook, Stage.TRADE, SNAPSHOT, NOW)
    assert verdict.decision == Decision.REJECTED
    error = next(f for f in verdict.findings if f.rule_id == "X-RAISES")
    assert (error.check, error.outcome, error.evidence) == (
        "X-RAISES.error",
        Outcome.FAIL,
        {"error": "KeyError"},
    )


def test_changing_a_parameter_or_severity_changes_the_fingerprint() -> None:
    classes = {"V1": toy_rule("V1", [Outcome.PASS])}
    base = build_rulebook(classes, {}).fingerprint
    assert build_rulebook(classes, {"rules": {"V1": {"parameters": {"threshold": 11}}}}).fingerprint != base
    assert build_rulebook(classes, {"rules": {"V1": {"severity": "warn"}}}).fingerprint != base
    assert build_rulebook(classes, {"rules": {"V1": {"parameters": {"threshold": 10}}}}).fingerprint == base


def test_rules_run_in_the_fixed_order_and_only_for_their_stages() -> None:
    classes = {
        rid: toy_rule(rid, [Outcome.PASS], stages=frozenset({Stage.TRADE} if rid != "S2" else {Stage.LISTING}))
        for rid in ["S10", "R2", "VENDOR-1", "S2", "R10", "R1", "S1"]
    }
    rulebook = build_rulebook(classes, {})
    assert [a.rule.id for a in rulebook.rules] == ["R1", "R2", "R10", "S1", "S2", "S10", "VENDOR-1"]
    verdict = evaluate(rulebook, Stage.TRADE, SNAPSHOT, NOW)
    assert [f.rule_id for f in verdict.findings] == ["R1", "R2", "R10", "S1", "S10", "VENDOR-1"]


@pytest.mark.parametrize(
    ("judged", "expected"),
    [
        ([], Decision.ACCEPTED),
        ([(Severity.WARN, Outcome.FAIL), (Severity.WARN, Outcome.REVIEW)], Decision.ACCEPTED),
        ([(Severity.REVIEW, Outcome.FAIL)], Decision.REVIEW),
        ([(Severity.BLOCK, Outcome.REVIEW), (Severity.BLOCK, Outcome.PASS)], Decision.REVIEW),
        ([(Severity.REVIEW, Outcome.FAIL), (Severity.BLOCK, Outcome.FAIL)], Decision.REJECTED),
        ([(Severity.BLOCK, Outcome.NOT_APPLICABLE)], Decision.ACCEPTED),
    ],
)
def test_decide_examples(judged, expected) -> None:
    assert decide(judged) == expected
