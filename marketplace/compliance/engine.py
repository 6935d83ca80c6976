"""The engine: run the stage's enabled rules in their fixed order and decide.

Decision, as a function of the findings and the severity of the rule behind each:
  - rejected  if any finding fails and its rule's severity is `block`
              (a rule that raises counts as a blocking failure: fail closed);
  - review    else, if any finding fails under a `review` rule, or asks for review under a
              `block` or `review` rule;
  - accepted  otherwise. `warn` rules never change the decision."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from marketplace.compliance.contract import Decision, Finding, Outcome, RuleContext, Severity, Stage, text
from marketplace.compliance.rulebook import ActiveRule, Rulebook
from marketplace.compliance.snapshots import Snapshot

log = logging.getLogger("marketplace.compliance")

# The one message the engine says itself, of any rule that raises (the catalogs translate it by this id).
RULE_ERROR_ID = "engine.rule-error"
RULE_ERROR = "the rule could not be evaluated ({error}); failing closed"
# The words of the snapshot's vocabularies that rules put into their messages as values (a party, a grade, a
# stage, a delivery mode, a data source, a dispute route): the catalogs translate them as `value.<word>`.
MESSAGE_VALUES = (
    *("organization", "provider", "buyer", "intermediary"),
    *("general", "important", "core"),
    *(stage.value for stage in Stage),
    *("file", "api", "privacy_computing"),
    *("self_generated", "public_collection", "authorized_public", "purchased"),
    *("negotiation", "mediation", "arbitration"),
)


@dataclass(frozen=True, slots=True)
class Verdict:
    stage: Stage
    decision: Decision
    findings: tuple[Finding, ...]
    rulebook_fingerprint: str
    evaluated_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage.value,
            "decision": self.decision.value,
            "findings": [f.as_json() for f in self.findings],
            "rulebook_fingerprint": self.rulebook_fingerprint,
            "evaluated_at": self.evaluated_at.isoformat(),
        }

    def failures(self) -> tuple[Finding, ...]:
        """The findings that failed or asked for review (read several times an order: the enum members are
        the module's globals below, not looked up on their class per finding)."""
        return tuple(f for f in self.findings if f.outcome is _FAIL or f.outcome is _REVIEW)


# Enum members as module globals: looking them up on the class costs ~100 ns each on 3.11,
# and decide() runs once per finding of every trade.
_FAIL, _REVIEW = Outcome.FAIL, Outcome.REVIEW
_BLOCK, _REVIEW_SEVERITY, _WARN = Severity.BLOCK, Severity.REVIEW, Severity.WARN


def decide(judged: Iterable[tuple[Severity, Outcome]]) -> Decision:
    review = False
    for severity, outcome in judged:
        if outcome is _FAIL:
            if severity is _BLOCK:
                return Decision.REJECTED
            if severity is _REVIEW_SEVERITY:
                review = True
        elif outcome is _REVIEW and severity is not _WARN:
            review = True
    return Decision.REVIEW if review else Decision.ACCEPTED


def evaluate(rulebook: Rulebook, stage: Stage, snapshot: Snapshot, now: datetime) -> Verdict:
    ctx = RuleContext(stage=stage, now=now, snapshot=snapshot)
    findings: list[Finding] = []
    judged: list[tuple[Severity, Outcome]] = []
    for active in rulebook.by_stage[stage]:
        try:
            produced = active.rule.evaluate(ctx)
        except Exception as exc:  # noqa: BLE001 - any error in a rule fails closed
            produced = [_error_finding(active, ctx, exc)]
            severity = Severity.BLOCK
        else:
            severity = active.severity
        for finding in produced:
            findings.append(finding)
            judged.append((severity, finding.outcome))
    return Verdict(
        stage=stage,
        decision=decide(judged),
        findings=tuple(findings),
        rulebook_fingerprint=rulebook.fingerprint,
        evaluated_at=now,
    )


def _error_finding(active: ActiveRule, ctx: RuleContext, exc: Exception) -> Finding:
    rule = active.rule
    log.error("rule %s raised while evaluating the %s stage", rule.id, ctx.stage.value, exc_info=exc)
    return rule.finding(
        "error",
        Outcome.FAIL,
        text(RULE_ERROR_ID, RULE_ERROR, error=type(exc).__name__),
        {"error": type(exc).__name__},
    )
