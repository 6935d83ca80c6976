"""The rule contract: what a rule declares, what it returns, and the words of a verdict.

A rule is a class with the declarations below and a pure `evaluate(ctx)`: no database, no
network, no clock except `ctx.now`. Rules are found through the entry-point group
`marketplace.rules`; a third-party package adds one the same way the built-in ones are added.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

from marketplace.compliance.snapshots import Snapshot

ENTRY_POINT_GROUP = "marketplace.rules"
EMPTY_EVIDENCE: Mapping[str, Any] = MappingProxyType({})


class Stage(enum.StrEnum):
    ADMISSION = "admission"
    LISTING = "listing"
    TRADE = "trade"
    DELIVERY = "delivery"
    SETTLEMENT = "settlement"


class Outcome(enum.StrEnum):
    PASS = "pass"  # noqa: S105 - an outcome, not a password
    FAIL = "fail"
    REVIEW = "review"
    NOT_APPLICABLE = "not_applicable"


class Severity(enum.StrEnum):
    """What a rule's failure does: block the act, hold it for review, or only warn."""

    BLOCK = "block"
    REVIEW = "review"
    WARN = "warn"


class Decision(enum.StrEnum):
    ACCEPTED = "accepted"
    REVIEW = "review"
    REJECTED = "rejected"


class Finding(NamedTuple):
    """One check's result. A named tuple: immutable, and cheap to make (a verdict holds dozens)."""

    rule_id: str
    check: str
    outcome: Outcome
    message: str
    evidence: Mapping[str, Any] = EMPTY_EVIDENCE
    basis: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "check": self.check,
            "outcome": self.outcome.value,
            "message": self.message,
            "evidence": dict(self.evidence),
            "basis": list(self.basis),
        }


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What a rule may look at: the frozen snapshot, the stage, and the time of evaluation."""

    stage: Stage
    now: datetime
    snapshot: Snapshot


class Rule:
    """Base class of every rule. Subclasses set the class attributes and implement `evaluate`.

    `parameters` holds the defaults; the rulebook may override them, and the engine makes one
    instance per rulebook with the merged values in `self.params`."""

    id: ClassVar[str]
    title_zh: ClassVar[str]
    title_en: ClassVar[str]
    version: ClassVar[str]
    basis: ClassVar[tuple[str, ...]]
    stages: ClassVar[frozenset[Stage]]
    parameters: ClassVar[Mapping[str, Any]] = {}
    default_severity: ClassVar[Severity] = Severity.BLOCK

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self.params: dict[str, Any] = {**self.parameters, **(params or {})}

    def evaluate(self, ctx: RuleContext) -> list[Finding]:
        raise NotImplementedError

    # Helpers for subclasses: every finding carries the rule's id and basis.

    def finding(
        self,
        check: str,
        outcome: Outcome,
        message: str,
        evidence: Mapping[str, Any] | None = None,
        basis: tuple[str, ...] | None = None,
    ) -> Finding:
        return Finding(
            self.id,
            f"{self.id}.{check}",
            outcome,
            message,
            evidence or EMPTY_EVIDENCE,
            self.basis if basis is None else basis,
        )

    def passed(self, check: str, message: str, evidence: Mapping[str, Any] | None = None) -> Finding:
        return self.finding(check, Outcome.PASS, message, evidence)

    def failed(self, check: str, message: str, evidence: Mapping[str, Any] | None = None) -> Finding:
        return self.finding(check, Outcome.FAIL, message, evidence)

    def review(self, check: str, message: str, evidence: Mapping[str, Any] | None = None) -> Finding:
        return self.finding(check, Outcome.REVIEW, message, evidence)

    def not_applicable(self, check: str, message: str, evidence: Mapping[str, Any] | None = None) -> Finding:
        return self.finding(check, Outcome.NOT_APPLICABLE, message, evidence)

    def check(
        self,
        check: str,
        ok: bool,
        passed: str,
        failed: str,
        evidence: Mapping[str, Any] | None = None,
        *,
        outcome_if_not: Outcome = Outcome.FAIL,
    ) -> Finding:
        """One finding for a yes/no check: `passed` when ok, else `failed` with `outcome_if_not`."""
        if ok:
            return self.finding(check, Outcome.PASS, passed, evidence)
        return self.finding(check, outcome_if_not, failed, evidence)
